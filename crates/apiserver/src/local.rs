//! In-process clients: the server's own components (scheduler, controllers, simulated nodes)
//! can reach the API without TLS and a loopback socket.
//!
//! [`LocalService`] is a `tower` service that hands each HTTP request to the same request path
//! a connection's requests take (routing, authentication, handlers, responses and watch streams
//! alike), as the admin user of the admin kubeconfig (`admin`, group `system:masters`). Plugged
//! into `kube::Client::new(service, namespace)`, a component stays an ordinary API client: it
//! sends the requests it would send over the network and reads the same responses; only the
//! TLS records, HTTP framing and socket copies are gone. Requests that switch protocols (exec,
//! attach, port-forward) need a connection and are not served this way.

use crate::authn::User;
use crate::serve::ConnInfo;
use crate::server::ApiServer;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Serves requests in process, as the admin user. Clones share the server.
#[derive(Clone)]
pub struct LocalService {
    api: Arc<ApiServer>,
    conn: Arc<ConnInfo>,
}

impl LocalService {
    /// A service over `api`, authenticated as the admin kubeconfig's user.
    pub fn new(api: Arc<ApiServer>) -> LocalService {
        let admin = User {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        };
        LocalService { api, conn: Arc::new(ConnInfo { cert_user: Some(admin) }) }
    }
}

impl std::fmt::Debug for LocalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalService").finish_non_exhaustive()
    }
}

impl<B> tower::Service<Request<B>> for LocalService
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (api, conn) = (self.api.clone(), self.conn.clone());
        Box::pin(async move { Ok(api.handle(req.map(Body::new), conn).await) })
    }
}
