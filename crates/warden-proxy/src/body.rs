//! Reading a request body within limits: size, time, content type and content encoding.
//!
//! A compressed body must not hide text from the guard: gzip, deflate and br bodies are decoded
//! (up to `max_decompressed_bytes`, so a decompression bomb is a 413, not an outage); other
//! encodings are refused with 415.

use crate::respond::ProxyError;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::io::Read;
use std::time::Duration;

/// Refuses anything but `application/json` (and `+json` types).
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ProxyError> {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        Ok(())
    } else if mime.is_empty() {
        Err(ProxyError::UnsupportedMedia(
            "the request has no Content-Type; send `Content-Type: application/json`".into(),
        ))
    } else {
        Err(ProxyError::UnsupportedMedia(format!("Content-Type `{mime}` is not supported; send `application/json`")))
    }
}

/// Reads the whole body, at most `limit` bytes, within `timeout`.
pub async fn read_limited(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ProxyError> {
    if let Some(len) =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(ProxyError::TooLarge(limit));
        }
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ProxyError::ClientTimeout(timeout)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::TooLarge(limit)),
        Ok(Err(e)) => Err(ProxyError::BadRequest(format!("could not read the request body: {e}"))),
    }
}

/// Decodes the body per its `Content-Encoding`, to at most `max` bytes.
pub fn decode_content(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Bytes, ProxyError> {
    let enc = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match enc.as_str() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => Box::new(flate2::read::GzDecoder::new(&body[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        "br" => Box::new(brotli_decompressor::Decompressor::new(&body[..], 4096)),
        other => {
            return Err(ProxyError::UnsupportedMedia(format!(
                "Content-Encoding `{other}` is not supported; send the body uncompressed or as gzip, deflate or br"
            )))
        }
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ProxyError::BadRequest(format!("the {enc} request body could not be decoded: {e}")))?;
    if out.len() > max {
        return Err(ProxyError::TooLarge(max));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, enc.parse().unwrap());
        h
    }

    #[test]
    fn gzip_is_decoded_and_bombs_are_capped() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = Bytes::from(e.finish().unwrap());
        assert_eq!(decode_content(&headers("gzip"), gz.clone(), 20_000).unwrap().len(), 10_000);
        assert!(matches!(decode_content(&headers("gzip"), gz, 1_000), Err(ProxyError::TooLarge(1_000))));
        assert!(matches!(decode_content(&headers("zstd"), Bytes::new(), 10), Err(ProxyError::UnsupportedMedia(_))));
    }
}
