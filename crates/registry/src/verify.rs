//! A blob stream checked against its descriptor while it flows.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::Stream;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Parses `sha256:<hex>` into the expected hash bytes.
pub(crate) fn parse_digest(d: &str) -> Option<[u8; 32]> {
    let hex = d.strip_prefix("sha256:")?;
    let v = hex::decode(hex).ok()?;
    v.try_into().ok()
}

/// Yields the blob's chunks; after the last one it checks digest and size and
/// yields an error instead of ending if they differ. More bytes than the
/// descriptor's size are an error as soon as they arrive.
pub struct Verified {
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    hasher: Sha256,
    want: Option<[u8; 32]>,
    digest: String,
    size: i64,
    seen: i64,
    done: bool,
}

impl Verified {
    pub fn new(
        inner: BoxStream<'static, std::io::Result<Bytes>>,
        digest: &str,
        size: i64,
    ) -> Verified {
        Verified {
            inner,
            hasher: Sha256::new(),
            want: parse_digest(digest),
            digest: digest.to_string(),
            size,
            seen: 0,
            done: false,
        }
    }

    /// The error for content that does not match the descriptor.
    fn verdict(&self) -> Error {
        if self.size >= 0 && self.seen < self.size {
            Error::Verify(format!(
                "blob {} is truncated: got {} of {} bytes",
                self.digest, self.seen, self.size
            ))
        } else {
            Error::Verify(format!(
                "filesystem layer verification failed for digest {}",
                self.digest
            ))
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> i64 {
        self.seen
    }
}

impl Stream for Verified {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                self.seen += b.len() as i64;
                if self.size >= 0 && self.seen > self.size {
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::Verify(format!(
                        "blob {} is larger than its declared size {}",
                        self.digest, self.size
                    )))));
                }
                self.hasher.update(&b);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                // oci-client checks the digest itself at the end of the stream; report
                // its verdict in dockerd's words, and never as a retryable failure.
                let digest_failed = e.get_ref().is_some_and(|inner| {
                    inner
                        .downcast_ref::<oci_client::errors::DigestError>()
                        .is_some()
                });
                if digest_failed {
                    return Poll::Ready(Some(Err(self.verdict())));
                }
                Poll::Ready(Some(Err(Error::Transport(format!(
                    "reading blob {}: {e}",
                    self.digest
                )))))
            }
            Poll::Ready(None) => {
                self.done = true;
                let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                if (self.size >= 0 && self.seen != self.size) || self.want != Some(got) {
                    return Poll::Ready(Some(Err(self.verdict())));
                }
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn stream(chunks: Vec<&'static [u8]>) -> BoxStream<'static, std::io::Result<Bytes>> {
        futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
    }

    async fn run(v: Verified) -> Result<Vec<u8>, Error> {
        let mut v = v;
        let mut out = Vec::new();
        while let Some(c) = v.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn verifies_digest_and_size() {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(
            run(Verified::new(stream(vec![b"hello ", b"world"]), &d, 11))
                .await
                .expect("ok"),
            b"hello world"
        );
        assert!(matches!(
            run(Verified::new(stream(vec![b"hello ", b"w0rld"]), &d, 11)).await,
            Err(Error::Verify(_))
        ));
        assert!(
            matches!(run(Verified::new(stream(vec![b"hello "]), &d, 11)).await, Err(Error::Verify(m)) if m.contains("truncated"))
        );
        assert!(
            matches!(run(Verified::new(stream(vec![b"hello world!!"]), &d, 11)).await, Err(Error::Verify(m)) if m.contains("larger"))
        );
    }
}
