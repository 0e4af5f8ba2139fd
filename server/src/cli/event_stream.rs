//! The event stream format (Server-Sent Events,
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html>) as
//! `listen` reads the inbox's live feed: fed with chunks that may split
//! lines anywhere, with memory bounded whatever the other side sends.
//!
//! A stream is lines grouped into events by blank lines, and nothing bounds
//! either in the format. The inbox's events are a few hundred bytes (one
//! poll item), so one event may hold at most [`MAX_EVENT_BYTES`], its lines
//! included: past that, what it held is dropped, the rest of it is skipped
//! as it arrives (nothing of it kept) until the blank line that ends it, and
//! the caller hears of it once ([`StreamItem::Oversized`]). The stream then
//! goes on with the next event. (The `eventsource-stream` crate bounds
//! neither lines nor events, hence this parser.)

/// Most bytes one event may hold: its field lines (`data:`, `event:`,
/// `id:` …) with their line ends; comments do not count, as they are not
/// kept.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id seen (ids persist until changed).
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// What the stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Event(SseEvent),
    /// An event grew past [`MAX_EVENT_BYTES`]: it is dropped, id included,
    /// and the rest of it is skipped. Reported once per event, as soon as
    /// it crosses the limit (its end may never come).
    Oversized,
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// The line being read (never longer than what the event may still hold).
    line: Vec<u8>,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    /// An `id:` of the event being read: it becomes `id` when the event
    /// ends, and is dropped with an oversized event.
    pending_id: Option<String>,
    id: Option<String>,
    /// Bytes of the event being read so far.
    event_bytes: usize,
    /// Skipping the rest of an oversized event.
    skipping: bool,
    /// While skipping: the current line holds something (so its end is not
    /// the blank line that ends the event).
    skipped_line_has_bytes: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<StreamItem> {
        let mut items = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if std::mem::take(&mut self.after_cr) && rest[0] == b'\n' {
                rest = &rest[1..];
                continue;
            }
            match rest.iter().position(|&byte| byte == b'\n' || byte == b'\r') {
                Some(at) => {
                    self.add_to_line(&rest[..at], &mut items);
                    self.after_cr = rest[at] == b'\r';
                    self.end_line(&mut items);
                    rest = &rest[at + 1..];
                }
                None => {
                    self.add_to_line(rest, &mut items);
                    rest = &[];
                }
            }
        }
        items
    }

    fn add_to_line(&mut self, part: &[u8], items: &mut Vec<StreamItem>) {
        if part.is_empty() {
            return;
        }
        if self.skipping {
            self.skipped_line_has_bytes = true;
            return;
        }
        // `>=`: the line's end counts too.
        if self.event_bytes + self.line.len() + part.len() >= MAX_EVENT_BYTES {
            self.drop_event();
            self.skipping = true;
            self.skipped_line_has_bytes = true;
            items.push(StreamItem::Oversized);
            return;
        }
        self.line.extend_from_slice(part);
    }

    /// Forgets the event being read, and frees what it held.
    fn drop_event(&mut self) {
        self.line = Vec::new();
        self.event = String::new();
        self.data = String::new();
        self.has_data = false;
        self.pending_id = None;
        self.event_bytes = 0;
    }

    fn end_line(&mut self, items: &mut Vec<StreamItem>) {
        if self.skipping {
            if !std::mem::take(&mut self.skipped_line_has_bytes) {
                // The blank line: the oversized event is over.
                self.skipping = false;
            }
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(items);
            return;
        }
        if line.starts_with(b":") {
            return;
        }
        self.event_bytes += line.len() + 1;
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.pending_id = Some(value.to_owned()),
            _ => {}
        }
    }

    /// A blank line: the event is complete (one without data is none).
    fn dispatch(&mut self, items: &mut Vec<StreamItem>) {
        if let Some(id) = self.pending_id.take() {
            self.id = Some(id);
        }
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        self.event_bytes = 0;
        if std::mem::take(&mut self.has_data) {
            items.push(StreamItem::Event(SseEvent {
                id: self.id.clone(),
                event: if event.is_empty() {
                    "message".to_owned()
                } else {
                    event
                },
                data,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<StreamItem> {
        let mut parser = SseParser::default();
        chunks.iter().flat_map(|chunk| parser.push(chunk)).collect()
    }

    fn event(id: Option<&str>, event: &str, data: &str) -> StreamItem {
        StreamItem::Event(SseEvent {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        })
    }

    #[test]
    fn events_are_parsed_whatever_the_chunking() {
        let stream: &[u8] =
            b": keep-alive\n\nevent: callback\nid: feed-7\ndata: {\"id\":1}\n\nevent: callback\r\nid: feed-8\r\ndata: a\r\ndata: b\r\n\r\n";
        let whole = parse_all(&[stream]);
        assert_eq!(
            whole,
            vec![
                event(Some("feed-7"), "callback", "{\"id\":1}"),
                event(Some("feed-8"), "callback", "a\nb"),
            ]
        );
        // Byte by byte, and split inside a CRLF, gives the same events.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
        for at in 1..stream.len() {
            assert_eq!(
                parse_all(&[&stream[..at], &stream[at..]]),
                whole,
                "split at {at}"
            );
        }
    }

    #[test]
    fn comments_and_events_without_data_dispatch_nothing() {
        assert!(parse_all(&[b":\n\nevent: x\n\nid: 3\n\n"]).is_empty());
        // The id persists for later events; a field without a colon is a name.
        assert_eq!(
            parse_all(&[b"id: 3\n\ndata\n\n"]),
            vec![event(Some("3"), "message", "")]
        );
    }

    #[test]
    fn an_event_past_the_limit_is_dropped_once_and_the_stream_goes_on() {
        let mut parser = SseParser::default();
        assert_eq!(
            parser.push(b"id: 1\nevent: callback\ndata: small\n\n"),
            vec![event(Some("1"), "callback", "small")]
        );
        // Many short lines, never a blank one: reported once, nothing kept.
        let line = format!("data: {}\n", "x".repeat(1000));
        let mut reported = 0;
        parser.push(b"id: 2\nevent: callback\n");
        for _ in 0..5_000 {
            let items = parser.push(line.as_bytes());
            assert!(items.iter().all(|item| *item == StreamItem::Oversized));
            reported += items.len();
            // Growth by doubling: at most twice the limit is ever held.
            assert!(parser.line.capacity() <= 2 * MAX_EVENT_BYTES);
            assert!(parser.data.capacity() <= 2 * MAX_EVENT_BYTES);
        }
        assert_eq!(reported, 1);
        assert!(parser.data.is_empty() && parser.line.is_empty());
        // Its end; the next event comes through, without the dropped id.
        assert_eq!(
            parser.push(b"\nevent: callback\ndata: next\n\n"),
            vec![event(Some("1"), "callback", "next")]
        );
    }

    #[test]
    fn a_line_without_end_is_bounded_too() {
        let mut parser = SseParser::default();
        let big = vec![b'x'; 64 * 1024];
        let mut items = Vec::new();
        for _ in 0..64 {
            items.extend(parser.push(&big));
            assert!(parser.line.len() <= MAX_EVENT_BYTES);
        }
        assert_eq!(items, vec![StreamItem::Oversized]);
        // The line's end is not the event's end; the blank line is.
        assert!(parser.push(b"\ndata: still skipped\n").is_empty());
        assert_eq!(
            parser.push(b"\ndata: after\n\n"),
            vec![event(None, "message", "after")]
        );
    }

    #[test]
    fn an_event_just_under_the_limit_is_kept() {
        let value = "y".repeat(MAX_EVENT_BYTES - "data: \n".len());
        let stream = format!("data: {value}\n\n");
        let items = parse_all(&[stream.as_bytes()]);
        assert_eq!(items, vec![event(None, "message", &value)]);
        let over = format!("data: {value}y\n\n");
        assert_eq!(parse_all(&[over.as_bytes()]), vec![StreamItem::Oversized]);
    }
}
