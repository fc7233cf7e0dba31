//! Just enough XML for the S3 documents the driver reads and writes by hand
//! (error documents, ListParts, CompleteMultipartUpload). Pure, so unit
//! tested natively.

/// The text of the first `<tag>...</tag>` in `xml`, entities decoded.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    blocks(xml, tag).into_iter().next().map(unescape)
}

/// The contents of every `<tag>...</tag>` in `xml`, in order (not nested).
pub fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        found.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    found
}

pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The body of a CompleteMultipartUpload of `parts` (number, ETag).
pub fn complete_body<'a>(parts: impl IntoIterator<Item = (i32, &'a str)>) -> String {
    let mut body = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (number, etag) in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// A part as ListParts reports it: (number, ETag, size).
pub type ListedPart = (i32, String, u64);

/// One page of ListParts: (number, ETag, size) of each part, and the marker
/// of the next page if there is one. Whatever the document's root is called
/// (moto 5.2 says `ListPartsResponse`, S3 `ListPartsResult`).
pub fn list_parts_page(xml: &str) -> Result<(Vec<ListedPart>, Option<String>), String> {
    let mut parts = Vec::new();
    for part in blocks(xml, "Part") {
        let number = text(part, "PartNumber")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("a part without a PartNumber: {part}"))?;
        let etag = text(part, "ETag").unwrap_or_default();
        let size = text(part, "Size").and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        parts.push((number, etag, size));
    }
    let truncated = text(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = text(xml, "NextPartNumberMarker").filter(|_| truncated);
    Ok((parts, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_parts_whatever_the_root() {
        let doc = r#"<?xml version="1.0"?><ListPartsResponse><Bucket>b</Bucket><IsTruncated>true</IsTruncated>
            <NextPartNumberMarker>2</NextPartNumberMarker>
            <Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag><Size>5242880</Size></Part>
            <Part><PartNumber>2</PartNumber><ETag>"def"</ETag><Size>17</Size></Part></ListPartsResponse>"#;
        let (parts, next) = list_parts_page(doc).unwrap();
        assert_eq!(
            parts,
            vec![(1, "\"abc\"".to_string(), 5242880), (2, "\"def\"".to_string(), 17)]
        );
        assert_eq!(next.as_deref(), Some("2"));
        let last = doc.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(list_parts_page(&last).unwrap().1, None);
    }

    #[test]
    fn writes_complete_multipart_upload() {
        let body = complete_body([(1, "\"a&b\""), (2, "\"c\"")]);
        assert!(body.contains("<Part><PartNumber>1</PartNumber><ETag>\"a&amp;b\"</ETag></Part>"));
        assert!(body.ends_with("<Part><PartNumber>2</PartNumber><ETag>\"c\"</ETag></Part></CompleteMultipartUpload>"));
    }

    #[test]
    fn finds_error_codes() {
        let doc = "<Error><Code>NoSuchKey</Code><Message>The key &lt;k&gt; does not exist</Message></Error>";
        assert_eq!(text(doc, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(text(doc, "Message").as_deref(), Some("The key <k> does not exist"));
        assert_eq!(text(doc, "Missing"), None);
    }
}
