//! An in-memory log sink, for tests that check what a consumer logs: hand clones of it to a
//! tracing subscriber's writer (`fanout_core::telemetry::json_subscriber(filter, move ||
//! sink.clone())`) and read the text back.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything written to any clone of it, in order.
#[derive(Debug, Clone, Default)]
pub struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
