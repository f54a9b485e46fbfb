//! Container logs as `GET /containerLogs/{ns}/{pod}/{container}` serves them: reading the CRI
//! log files the runtime writes (`<RFC3339Nano> <stdout|stderr> <P|F> <text>` per line, `P`
//! marking a piece of a longer line that goes on in the next entry), with upstream's options
//! (`tailLines`, `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, `previous`, `follow`).
//!
//! Which file: the pod's log dir (`layout::pod_log_dir`) holds `<container>/<restartCount>.log`
//! for each run of the container; the current run is the highest restart count, the previous
//! one the next lower. Following stops once the writer is done with the file: a newer run's
//! file appeared, or the runtime no longer reports the run as running (see [`follow`]).

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use std::io::{self, BufRead, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a log request asks for (upstream's `PodLogOptions`, minus `container`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming as the container writes.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Only entries written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Prefix each line with its RFC3339Nano time.
    pub timestamps: bool,
    /// The previous run of the container instead of the current one.
    pub previous: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

fn bool_param(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "1" | "t" | "T" | "true" | "True" | "TRUE" => Ok(true),
        "0" | "f" | "F" | "false" | "False" | "FALSE" => Ok(false),
        _ => Err(format!("invalid value {v:?} for query parameter {name}: not a boolean")),
    }
}

fn int_param(name: &str, v: &str) -> Result<i64, String> {
    v.parse().map_err(|_| format!("invalid value {v:?} for query parameter {name}: not an integer"))
}

impl LogOptions {
    /// Reads the options from a raw query string; `now` anchors `sinceSeconds`. Errors read
    /// like upstream's validation of `PodLogOptions`.
    pub fn from_query(query: Option<&str>, now: DateTime<Utc>) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in form_urlencoded_pairs(query.unwrap_or("")) {
            match k.as_str() {
                "follow" => o.follow = bool_param(&k, &v)?,
                "timestamps" => o.timestamps = bool_param(&k, &v)?,
                "previous" => o.previous = bool_param(&k, &v)?,
                // `tail` is the old spelling; `all` means no limit.
                "tailLines" | "tail" if v == "all" => o.tail_lines = None,
                "tailLines" | "tail" => {
                    let n = int_param(&k, &v)?;
                    if n < 0 {
                        return Err(format!("tailLines: Invalid value: {n}: must be greater than or equal to 0"));
                    }
                    o.tail_lines = Some(n as u64);
                }
                "limitBytes" => {
                    let n = int_param(&k, &v)?;
                    if n < 1 {
                        return Err(format!("limitBytes: Invalid value: {n}: must be greater than 0"));
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = int_param(&k, &v)?;
                    if n < 1 {
                        return Err(format!("sinceSeconds: Invalid value: {n}: must be greater than 0"));
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(&v).map_err(|_| {
                        format!("invalid value {v:?} for query parameter sinceTime: not an RFC3339 time")
                    })?;
                    since_time = Some(t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into()),
            (Some(s), None) => Some(now - chrono::Duration::seconds(s)),
            (None, t) => t,
        };
        Ok(o)
    }
}

/// Decodes `a=b&c=d` pairs (percent- and `+`-decoding).
pub(crate) fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which output stream an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One entry of a CRI log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When the runtime wrote it.
    pub time: DateTime<FixedOffset>,
    /// Where it came from.
    pub stream: Stream,
    /// Whether the line goes on in the next entry of the same stream (tag `P`).
    pub partial: bool,
    /// The text; a full entry ends with `\n`, a partial one does not.
    pub text: &'a [u8],
}

/// Parses one line of a CRI log file (with or without its trailing `\n`); `None` when it is
/// not in the CRI format.
pub fn parse_line(line: &[u8]) -> Option<Entry<'_>> {
    let mut fields = line.splitn(4, |&c| c == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // Tags are `:`-separated; the first is `P` or `F`.
    let tags = fields.next()?;
    let partial = match tags.split(|&c| c == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let mut text = fields.next().unwrap_or_default();
    if partial && text.last() == Some(&b'\n') {
        text = &text[..text.len() - 1];
    }
    Some(Entry { time, stream, partial, text })
}

/// Formats a time as Go's `RFC3339Nano` does: trailing zeros of the fraction dropped, `Z` for
/// UTC.
pub fn rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if t.offset().local_minus_utc() == 0 {
        s.push('Z');
    } else {
        s.push_str(&t.format("%:z").to_string());
    }
    s
}

/// The tag of the raw line starting at `start`: whether it is a partial entry. Lines that are
/// not CRI entries count as full lines.
fn is_partial_at(file: &std::fs::File, start: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 96];
    let n = file.read_at(&mut head, start)?;
    let head = &head[..n];
    let mut fields = head.splitn(4, |&c| c == b' ');
    let _time = fields.next();
    let _stream = fields.next();
    Ok(matches!(fields.next(), Some(tag) if tag.split(|&c| c == b':').next() == Some(b"P")))
}

/// Where the last `n` lines of a CRI log file start, scanning backwards from the end. A line is
/// what the container wrote: a run of partial entries and the full entry ending it (a trailing
/// run of partial entries counts as a line too).
pub fn tail_offset(file: &std::fs::File, n: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if n == 0 {
        return Ok(len);
    }
    const CHUNK: u64 = 64 * 1024;
    let mut count = 0u64;
    // Start of the raw line after the one being looked at.
    let mut next_start = len;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    // A '\n' as the very last byte ends the last line rather than starting a new one.
    let mut skip_final_newline = true;
    while end > 0 {
        let begin = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - begin) as usize];
        file.read_exact_at(chunk, begin)?;
        for i in (0..chunk.len()).rev() {
            if chunk[i] != b'\n' {
                continue;
            }
            let start = begin + i as u64 + 1;
            if skip_final_newline && start == len {
                skip_final_newline = false;
                continue;
            }
            skip_final_newline = false;
            if start >= next_start {
                continue;
            }
            // The raw line [start, next_start).
            let ends_line = next_start == len || !is_partial_at(file, start)?;
            if ends_line {
                if count == n {
                    return Ok(next_start);
                }
                count += 1;
            }
            next_start = start;
        }
        skip_final_newline = false;
        end = begin;
    }
    // The first raw line, at offset 0.
    if next_start > 0 {
        let ends_line = next_start == len || !is_partial_at(file, 0)?;
        if ends_line && count == n {
            return Ok(next_start);
        }
    }
    Ok(0)
}

/// Turns CRI entries into the bytes a client sees: `since` filtering, timestamp prefixes at
/// the start of each line, and the byte limit.
#[derive(Debug)]
pub struct Formatter {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    remaining: Option<u64>,
    /// Per stream: whether the next entry starts a new line (the last one was full).
    at_line_start: [bool; 2],
}

impl Formatter {
    /// A formatter for `opts`.
    pub fn new(opts: &LogOptions) -> Self {
        Formatter {
            since: opts.since,
            timestamps: opts.timestamps,
            remaining: opts.limit_bytes,
            at_line_start: [true; 2],
        }
    }

    /// Whether the byte limit has been reached (nothing more will be written).
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends one raw file line to `out`; malformed lines are skipped as upstream does.
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.exhausted() {
            return;
        }
        let Some(entry) = parse_line(line) else {
            tracing::debug!(line = %String::from_utf8_lossy(line), "skipping a log line not in the CRI format");
            return;
        };
        let idx = entry.stream as usize;
        let starts_line = self.at_line_start[idx];
        self.at_line_start[idx] = !entry.partial;
        if self.since.is_some_and(|since| entry.time.with_timezone(&Utc) < since) {
            return;
        }
        let mut piece = Vec::with_capacity(entry.text.len() + 40);
        if self.timestamps && starts_line {
            piece.extend_from_slice(rfc3339_nano(&entry.time).as_bytes());
            piece.push(b' ');
        }
        piece.extend_from_slice(entry.text);
        if let Some(rem) = &mut self.remaining {
            piece.truncate(piece.len().min(*rem as usize));
            *rem -= piece.len() as u64;
        }
        out.extend_from_slice(&piece);
    }
}

/// The log files of one container: `(restartCount, path)`, oldest first.
pub fn runs(container_dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(container_dir) else { return Vec::new() };
    let mut runs: Vec<(u32, PathBuf)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_suffix(".log")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    runs.sort();
    runs
}

/// How often a followed file is polled for new data.
const POLL: Duration = Duration::from_millis(200);
/// How often, while a followed file does not grow, the writer is checked for being done.
const DONE_CHECK: Duration = Duration::from_secs(1);
/// The most sent in one chunk.
const CHUNK: usize = 32 * 1024;

/// Streams a log file through `tx` as `opts` asks. With `follow`, waits for more once at the
/// end of the file, asking `done()` now and then whether the writer has finished with it; then
/// sends what is left and ends. Ends early when the receiver goes away.
pub async fn stream<F, Fut>(
    path: PathBuf,
    opts: LogOptions,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    mut done: F,
) -> io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let file = std::fs::File::open(&path)?;
    let start = match opts.tail_lines {
        Some(n) => tail_offset(&file, n)?,
        None => 0,
    };
    let mut reader = io::BufReader::new(file);
    reader.seek(SeekFrom::Start(start))?;
    let mut fmt = Formatter::new(&opts);
    let mut pending: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut finishing = false;
    let mut idle = Duration::ZERO;
    loop {
        // Read whatever is there now (blocking reads of a regular file are short).
        let mut at_eof = false;
        while out.len() < CHUNK && !fmt.exhausted() {
            let n = reader.read_until(b'\n', &mut pending)?;
            if n == 0 {
                at_eof = true;
                break;
            }
            if pending.last() == Some(&b'\n') {
                fmt.push_line(&pending, &mut out);
                pending.clear();
            }
        }
        if !out.is_empty() {
            idle = Duration::ZERO;
            if tx.send(Bytes::from(std::mem::take(&mut out))).await.is_err() {
                return Ok(());
            }
        }
        if fmt.exhausted() {
            return Ok(());
        }
        if !at_eof {
            continue;
        }
        if !opts.follow || finishing {
            // A last line the writer never ended still counts once it is done.
            if !pending.is_empty() {
                fmt.push_line(&pending, &mut out);
                if !out.is_empty() {
                    let _ = tx.send(Bytes::from(out)).await;
                }
            }
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        idle += POLL;
        if idle >= DONE_CHECK {
            idle = Duration::ZERO;
            if done().await {
                // One more pass to pick up what was written before the writer finished.
                finishing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LOG: &str = "\
2024-05-01T10:00:00.100000000Z stdout F one
2024-05-01T10:00:01.000000000Z stderr F two
2024-05-01T10:00:02.500000000Z stdout P thr
2024-05-01T10:00:02.600000000Z stdout F ee
2024-05-01T10:00:03Z stdout F four
";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
        p
    }

    async fn collect(path: PathBuf, opts: LogOptions) -> String {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        stream(path, opts, tx, || async { true }).await.unwrap();
        let mut s = Vec::new();
        while let Some(b) = rx.recv().await {
            s.extend_from_slice(&b);
        }
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn parses_cri_lines() {
        let e = parse_line(b"2024-05-01T10:00:00.1Z stderr F hello world\n").unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert!(!e.partial);
        assert_eq!(e.text, b"hello world\n");
        let e = parse_line(b"2024-05-01T10:00:00.1+02:00 stdout P:x part\n").unwrap();
        assert!(e.partial);
        assert_eq!(e.text, b"part");
        assert_eq!(rfc3339_nano(&e.time), "2024-05-01T10:00:00.1+02:00");
        // An empty line is written as an empty full entry.
        assert_eq!(parse_line(b"2024-05-01T10:00:00Z stdout F \n").unwrap().text, b"\n");
        assert!(parse_line(b"garbage").is_none());
        assert!(parse_line(b"2024-05-01T10:00:00Z stdin F x").is_none());
        assert!(parse_line(b"2024-05-01T10:00:00Z stdout X x").is_none());
    }

    #[test]
    fn formats_times_like_go() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:02.500000000Z").unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-05-01T10:00:02.5Z");
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:03Z").unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-05-01T10:00:03Z");
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:03.000000123-05:30").unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-05-01T10:00:03.000000123-05:30");
    }

    #[test]
    fn reads_options() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let o = LogOptions::from_query(Some("follow=true&tailLines=3&timestamps=1&limitBytes=10&sinceSeconds=60"), now)
            .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(3), Some(10)));
        assert_eq!(o.since.unwrap().to_rfc3339(), "2024-05-01T09:59:00+00:00");
        let o = LogOptions::from_query(Some("sinceTime=2024-05-01T09%3A00%3A00Z&previous=true&tail=all"), now).unwrap();
        assert!(o.previous);
        assert_eq!(o.tail_lines, None);
        assert_eq!(o.since.unwrap().to_rfc3339(), "2024-05-01T09:00:00+00:00");
        assert!(LogOptions::from_query(Some("tailLines=-1"), now).unwrap_err().contains("tailLines"));
        assert!(LogOptions::from_query(Some("limitBytes=0"), now).is_err());
        assert!(LogOptions::from_query(Some("follow=maybe"), now).is_err());
        assert!(LogOptions::from_query(Some("sinceSeconds=1&sinceTime=2024-05-01T09:00:00Z"), now).is_err());
    }

    #[tokio::test]
    async fn joins_partial_lines_and_prefixes_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "0.log", LOG);
        assert_eq!(collect(p.clone(), LogOptions::default()).await, "one\ntwo\nthree\nfour\n");
        let ts = LogOptions { timestamps: true, ..Default::default() };
        assert_eq!(
            collect(p, ts).await,
            "2024-05-01T10:00:00.1Z one\n2024-05-01T10:00:01Z two\n2024-05-01T10:00:02.5Z three\n2024-05-01T10:00:03Z four\n"
        );
    }

    #[tokio::test]
    async fn tails_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "0.log", LOG);
        let tail = |n| LogOptions { tail_lines: Some(n), ..Default::default() };
        assert_eq!(collect(p.clone(), tail(0)).await, "");
        assert_eq!(collect(p.clone(), tail(1)).await, "four\n");
        // The partial entry and its end count as one line.
        assert_eq!(collect(p.clone(), tail(2)).await, "three\nfour\n");
        assert_eq!(collect(p.clone(), tail(3)).await, "two\nthree\nfour\n");
        assert_eq!(collect(p.clone(), tail(4)).await, "one\ntwo\nthree\nfour\n");
        assert_eq!(collect(p.clone(), tail(100)).await, "one\ntwo\nthree\nfour\n");
        // A trailing partial entry is a line of its own.
        let p = write(dir.path(), "1.log", "2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:01Z stdout P b\n");
        assert_eq!(collect(p, tail(1)).await, "b");
        // Without a final newline.
        let p = write(dir.path(), "2.log", "2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:01Z stdout F b");
        assert_eq!(collect(p, tail(1)).await, "b");
        let empty = write(dir.path(), "3.log", "");
        assert_eq!(collect(empty, tail(5)).await, "");
    }

    #[tokio::test]
    async fn tails_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("2024-05-01T10:00:00Z stdout F line {i:05}\n"));
        }
        let p = write(dir.path(), "0.log", &text);
        let out = collect(p, LogOptions { tail_lines: Some(3000), ..Default::default() }).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3000);
        assert_eq!(lines[0], "line 02000");
        assert_eq!(lines[2999], "line 04999");
    }

    #[tokio::test]
    async fn filters_by_time_and_limits_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "0.log", LOG);
        let since = DateTime::parse_from_rfc3339("2024-05-01T10:00:01Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            collect(p.clone(), LogOptions { since: Some(since), ..Default::default() }).await,
            "two\nthree\nfour\n"
        );
        assert_eq!(collect(p.clone(), LogOptions { limit_bytes: Some(6), ..Default::default() }).await, "one\ntw");
        let o = LogOptions { limit_bytes: Some(30), timestamps: true, ..Default::default() };
        assert_eq!(collect(p, o).await, "2024-05-01T10:00:00.1Z one\n202");
    }

    #[tokio::test]
    async fn follows_until_the_writer_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "0.log", "2024-05-01T10:00:00Z stdout F a\n");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f2 = finished.clone();
        let task = tokio::spawn(stream(p.clone(), LogOptions { follow: true, ..Default::default() }, tx, move || {
            let f = f2.clone();
            async move { f.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(&rx.recv().await.unwrap()[..], b"a\n");
        // A line written in two pieces arrives whole.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2024-05-01T10:00:01Z stdout F b").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        f.write_all(b"c\n").unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"bc\n");
        f.write_all(b"2024-05-01T10:00:02Z stderr F d\n").unwrap();
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(&rx.recv().await.unwrap()[..], b"d\n");
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
        assert!(rx.recv().await.is_none());
    }

    #[test]
    fn lists_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["0.log", "10.log", "2.log", "x.log", "3.log.20240501"] {
            write(dir.path(), n, "");
        }
        let runs: Vec<u32> = runs(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(runs, vec![0, 2, 10]);
        assert!(super::runs(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn decodes_queries() {
        let q = form_urlencoded_pairs("command=sh&command=-c&command=echo+hi%20there&x&bad=%zz&end=%4");
        assert_eq!(q[0], ("command".into(), "sh".into()));
        assert_eq!(q[2], ("command".into(), "echo hi there".into()));
        assert_eq!(q[3], ("x".into(), "".into()));
        assert_eq!(q[4], ("bad".into(), "%zz".into()));
        assert_eq!(q[5], ("end".into(), "%4".into()));
    }
}
