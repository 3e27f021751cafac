//! SNS's XML documents: responses and error documents, with every value escaped.

use std::fmt::Write as _;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_into(&mut out, s);
    out
}

pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all become U+FFFD.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Builds `<{Action}Response><{Action}Result>…</…Result><ResponseMetadata>…`.
pub struct Doc {
    action: &'static str,
    body: String,
    has_result: bool,
}

impl Doc {
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            body: String::with_capacity(256),
            has_result: false,
        }
    }

    /// Appends an element with escaped text.
    pub fn el(&mut self, name: &str, text: &str) -> &mut Self {
        self.has_result = true;
        let _ = write!(self.body, "<{name}>");
        escape_into(&mut self.body, text);
        let _ = write!(self.body, "</{name}>");
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.has_result = true;
        let _ = write!(self.body, "<{name}>");
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.body, "</{name}>");
        self
    }

    /// `<Attributes><entry><key>…</key><value>…</value></entry>…</Attributes>`.
    pub fn attributes<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.open("Attributes");
        for (k, v) in entries {
            self.open("entry")
                .el("key", k)
                .el("value", v)
                .close("entry");
        }
        self.close("Attributes")
    }

    pub fn finish(&self, request_id: &str) -> Response {
        let a = self.action;
        let mut s = String::with_capacity(self.body.len() + 300);
        let _ = write!(
            s,
            "<?xml version=\"1.0\"?>\n<{a}Response xmlns=\"{XMLNS}\">"
        );
        if self.has_result {
            let _ = write!(s, "<{a}Result>{}</{a}Result>", self.body);
        }
        let _ = writeln!(
            s,
            "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{a}Response>",
            escape(request_id)
        );
        xml_response(StatusCode::OK, s, request_id)
    }
}

/// An SNS error: code, HTTP status and message.
#[derive(Debug, Clone)]
pub struct SnsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl SnsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// `InvalidParameter` (400), the code SNS uses for bad and missing parameters.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }
    /// `NotFound` (404), for unknown topics and subscriptions.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn into_response(self, request_id: &str) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let s = format!(
            "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>\n",
            self.code,
            escape(&self.message),
            escape(request_id)
        );
        xml_response(self.status, s, request_id)
    }
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;\u{FFFD}"
        );
    }
}
