//! A Server-Sent Events client for tests: connects to `GET /tenant/events` with
//! `Accept: text/event-stream` (and `Last-Event-ID` when resuming) and reads frames.

use std::time::Duration;

/// One SSE frame: an event, or a comment (keep-alive).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    /// Comment lines (`: …`), such as keep-alives.
    pub comments: Vec<String>,
}

impl Frame {
    /// The frame's data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("frame data is not JSON ({e}): {self:?}"))
    }
}

/// An open stream.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `{base}/tenant/events{query}` as `token`, resuming after `last_event_id` when given.
    pub async fn connect(base: &str, query: &str, token: &str, last_event_id: Option<u64>) -> Sse {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/tenant/events{query}"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.headers());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Sse { response, buffer: String::new() }
    }

    /// The next frame, comments included; None when the server ended the stream. Panics if none
    /// comes within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!("no frame within {wait:?}; buffered: {:?}", self.buffer),
            }
        }
    }

    /// The next event frame (comments skipped); None at the end of the stream.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let frame = self.next_frame(wait).await?;
            if frame.event.is_some() || !frame.data.is_empty() {
                return Some(frame);
            }
        }
    }

    /// The next `n` event frames.
    pub async fn events(&mut self, n: usize, wait: Duration) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(n);
        while frames.len() < n {
            match self.next_event(wait).await {
                Some(frame) => frames.push(frame),
                None => panic!("the stream ended after {} of {n} events: {frames:#?}", frames.len()),
            }
        }
        frames
    }
}

fn parse(block: &str) -> Frame {
    let mut frame = Frame::default();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comments.push(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "data" if frame.data.is_empty() => frame.data = value.to_owned(),
            "data" => {
                frame.data.push('\n');
                frame.data.push_str(value);
            }
            _ => {}
        }
    }
    frame
}
