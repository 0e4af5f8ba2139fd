//! Building URLs: one percent-encoder for query values, used wherever a
//! path or filter travels inside a query string.

/// Percent-encodes a query value. `/` stays as it is (allowed in a query,
/// and keeps `next=/admin/callbacks` readable); everything that could end
/// the value or the URL is escaped.
pub fn encode_query_value(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::encode_query_value;

    #[test]
    fn query_values_are_percent_encoded_but_paths_stay_readable() {
        assert_eq!(
            encode_query_value("/admin/callbacks?callback=a&b c"),
            "/admin/callbacks%3Fcallback%3Da%26b%20c"
        );
        assert_eq!(encode_query_value("é#"), "%C3%A9%23");
    }
}
