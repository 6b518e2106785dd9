//! Turning AWS SDK errors into record failures: retryable unless the service said the request
//! itself can never succeed. [`error_chain`], the one way errors become log text, and
//! [`scrub_personal`], which every error text passes before it is logged or parked.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::outcome::RecordError;

/// Classifies an SDK error. `permanent_codes` are the service error codes that mean this
/// request can never succeed however often it is sent (for example `ValidationException`);
/// everything else (throttling, 5xx, timeouts, connection errors, and errors an operator can
/// fix such as an unverified identity) is retryable.
///
/// The message carries the error code and the whole source chain.
pub fn classify_sdk_error<E, R>(
    operation: &str,
    err: &SdkError<E, R>,
    permanent_codes: &[&str],
) -> RecordError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or("");
    let message = format!(
        "{operation} failed{}: {}",
        if code.is_empty() {
            String::new()
        } else {
            format!(" ({code})")
        },
        err.message()
            .map(str::to_owned)
            .unwrap_or_else(|| error_chain(err)),
    );
    if matches!(err, SdkError::ServiceError(_)) && permanent_codes.contains(&code) {
        RecordError::Permanent(message)
    } else {
        RecordError::Retryable(message)
    }
}

/// An error and all its sources on one line, for log lines and error messages (the SDK's
/// top-level errors say little without their sources).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What stands in for a scrubbed email address.
pub const SCRUBBED_EMAIL: &str = "<email>";
/// What stands in for another scrubbed personal value.
pub const SCRUBBED_VALUE: &str = "<personal>";

/// `text` without personal data: every `known` value (the record's personal attributes, see
/// [`crate::domain::User::PERSONAL_FIELDS`]) and anything shaped like an email address replaced.
/// Targets quote what they refuse (an SES rejection names the recipient, a search 400 quotes
/// the document); their messages reach logs and parked messages only through this.
///
/// ```
/// use fanout_core::failure::scrub_personal;
/// let text = r#"MessageRejected: ada@example.com; document {"name":"Ada Lovelace"}"#;
/// assert_eq!(
///     scrub_personal(text, &["Ada Lovelace".to_owned()]),
///     r#"MessageRejected: <email>; document {"name":"<personal>"}"#
/// );
/// ```
pub fn scrub_personal(text: &str, known: &[String]) -> String {
    let mut scrubbed = text.to_owned();
    // Longest first, so a value containing another is replaced whole.
    let mut known: Vec<&String> = known.iter().filter(|v| v.chars().count() >= 2).collect();
    known.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for value in known {
        if value.contains('@') {
            scrubbed = scrubbed.replace(value.as_str(), SCRUBBED_EMAIL);
        } else {
            scrubbed = scrubbed.replace(value.as_str(), SCRUBBED_VALUE);
        }
    }
    scrub_email_addresses(&scrubbed)
}

/// Replaces every `local@domain.tld` shape (the domain holding a dot).
fn scrub_email_addresses(text: &str) -> String {
    let local = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let domain = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            let start = (0..i).rev().take_while(|&j| local(chars[j])).last();
            let end = (i + 1..chars.len())
                .take_while(|&j| domain(chars[j]))
                .last();
            if let (Some(start), Some(end)) = (start, end) {
                let host: String = chars[i + 1..=end].iter().collect();
                let host = host.trim_end_matches('.');
                if host.contains('.') && !host.starts_with('.') {
                    // Drop the local part already copied, then the address.
                    for _ in start..i {
                        out.pop();
                    }
                    out.push_str(SCRUBBED_EMAIL);
                    i = i + 1 + host.chars().count();
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes_are_scrubbed_wherever_they_stand() {
        assert_eq!(
            scrub_personal("to <u1@example.com>, (x.y+z@mail.example.co.uk).", &[]),
            "to <<email>>, (<email>)."
        );
        assert_eq!(
            scrub_personal("\"u-1001@example.com\" rejected", &[]),
            "\"<email>\" rejected"
        );
        // Not addresses: a bare @, a handle, a host without a dot.
        assert_eq!(
            scrub_personal("@ a@b @home x@localhost", &[]),
            "@ a@b @home x@localhost"
        );
    }

    #[test]
    fn known_values_are_scrubbed_even_unicode_and_longest_first() {
        let known = ["Zoë 🚀 Ünïcødé".to_owned(), "Zoë".to_owned()];
        assert_eq!(
            scrub_personal("name Zoë 🚀 Ünïcødé and Zoë", &known),
            "name <personal> and <personal>"
        );
    }
}
