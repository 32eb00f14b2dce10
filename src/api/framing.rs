//! Request bodies that end inside a gRPC message: `INVALID_ARGUMENT` naming
//! the body, where tonic would answer `INTERNAL` ("Unexpected EOF decoding
//! stream.") for what is the client's mistake.
//!
//! A gRPC message travels as a 5-byte prefix (a compression flag, then the
//! message's length, big-endian) and that many bytes. [`WholeMessages`]
//! passes a request body through untouched while counting where each
//! message ends; if the body ends before the last one does (a prefix cut
//! short, or fewer bytes than it announced), it ends with an error that
//! carries the status, and tonic answers with that status (it looks for a
//! [`tonic::Status`] in a body error's chain). Flags and sizes are still tonic's to
//! judge.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::domain::Violations;

/// The length of a message's prefix: its compression flag and its length.
const PREFIX_BYTES: usize = 5;

/// Wraps every request body in [`WholeMessages`].
#[derive(Clone, Copy, Debug, Default)]
pub struct WholeMessagesLayer;

impl<S> Layer<S> for WholeMessagesLayer {
    type Service = WholeMessagesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WholeMessagesService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct WholeMessagesService<S> {
    inner: S,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for WholeMessagesService<S>
where
    S: Service<http::Request<WholeMessages<ReqBody>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        self.inner.call(request.map(WholeMessages::new))
    }
}

/// Where a body stands in its sequence of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// `read` bytes of a prefix seen; `length` holds the length bytes so far.
    Prefix { read: usize, length: u32 },
    /// Inside a message, with this many bytes still to come.
    Message { left: u64 },
}

impl Position {
    const START: Position = Position::Prefix { read: 0, length: 0 };

    /// Moves past `bytes`.
    fn advance(mut self, mut bytes: &[u8]) -> Position {
        while !bytes.is_empty() {
            self = match self {
                Position::Prefix { read, length } => {
                    // Byte 0 is the flag; bytes 1-4 the length.
                    let length = if read == 0 {
                        length
                    } else {
                        (length << 8) | u32::from(bytes[0])
                    };
                    bytes = &bytes[1..];
                    if read + 1 == PREFIX_BYTES {
                        Position::Message {
                            left: u64::from(length),
                        }
                    } else {
                        Position::Prefix {
                            read: read + 1,
                            length,
                        }
                    }
                }
                Position::Message { left } => {
                    let taken = left.min(bytes.len() as u64);
                    // `taken` is at most `bytes.len()`, a usize.
                    bytes = &bytes[taken as usize..];
                    Position::Message { left: left - taken }
                }
            };
            if self == (Position::Message { left: 0 }) {
                self = Position::START;
            }
        }
        self
    }

    /// Why a body that ends here is cut short, if it is.
    fn cut_short(self) -> Option<String> {
        match self {
            Position::Prefix { read: 0, .. } => None,
            Position::Prefix { read, .. } => Some(format!(
                "ends {read} bytes into a message's 5-byte gRPC prefix"
            )),
            Position::Message { left } => Some(format!(
                "ends {left} bytes before the end of the gRPC message its prefix announced"
            )),
        }
    }
}

pin_project! {
    /// A request body, passed through, that fails with `INVALID_ARGUMENT`
    /// if it ends inside a message.
    #[derive(Debug)]
    pub struct WholeMessages<B> {
        #[pin]
        inner: B,
        position: Position,
        // The error has been given: the body is over.
        done: bool,
    }
}

impl<B> WholeMessages<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            position: Position::START,
            done: false,
        }
    }
}

impl<B> Body for WholeMessages<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let last = match ready!(this.inner.poll_frame(cx)) {
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => {
                    *this.position = this.position.advance(data);
                    return Poll::Ready(Some(Ok(frame)));
                }
                None => Some(frame),
            },
            None => None,
        };
        // Trailers, or the end of the body: tonic reads no further, so a
        // message cut short is reported now or never.
        match this.position.cut_short() {
            None => Poll::Ready(last.map(Ok)),
            Some(why) => {
                *this.done = true;
                Poll::Ready(Some(Err(invalid_body(why))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.inner.is_end_stream() && self.position.cut_short().is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a body cut short ends with: tonic answers the status it holds.
fn invalid_body(why: String) -> tonic::codegen::StdError {
    Box::new(super::status::invalid_argument(&Violations::one(
        "body", why,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    /// What tonic would read of a body of `frames`: its frames up to the
    /// first error, and that error's status.
    async fn read(frames: Vec<Frame<Bytes>>) -> (usize, Option<tonic::Status>) {
        let stream = tokio_stream::iter(frames.into_iter().map(Ok::<_, std::convert::Infallible>));
        let mut body = WholeMessages::new(StreamBody::new(stream));
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(_) => read += 1,
                Err(e) => return (read, Some(tonic::Status::from_error(e))),
            }
        }
        (read, None)
    }

    #[tokio::test]
    async fn a_message_cut_before_trailers_is_invalid_argument() {
        let whole = || Frame::data(Bytes::from_static(&[0, 0, 0, 0, 1, 7]));
        let cut = Frame::data(Bytes::from_static(&[0, 0, 0, 0, 9, 7]));
        let trailers = || Frame::trailers(http::HeaderMap::new());
        assert_eq!(read(vec![whole(), trailers()]).await.0, 2);
        let (frames, status) = read(vec![whole(), cut, trailers()]).await;
        assert_eq!(frames, 2);
        let status = status.expect("an error");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("ends 8 bytes before the end"),
            "{status:?}"
        );
        // And without trailers, at the end of the body.
        let (_, status) = read(vec![Frame::data(Bytes::from_static(&[0, 0]))]).await;
        assert_eq!(status.map(|s| s.code()), Some(tonic::Code::InvalidArgument));
    }

    fn after(chunks: &[&[u8]]) -> Position {
        chunks
            .iter()
            .fold(Position::START, |p, chunk| p.advance(chunk))
    }

    #[test]
    fn whole_messages_end_at_a_boundary() {
        assert_eq!(after(&[]), Position::START);
        assert_eq!(after(&[&[0, 0, 0, 0, 3, 1, 2, 3]]), Position::START);
        // An empty message, then one split across three chunks.
        assert_eq!(
            after(&[&[0, 0, 0, 0, 0, 0, 0], &[0, 0], &[4, 9, 9, 9, 9]]),
            Position::START
        );
        // A length over 255 is big-endian.
        let mut big = vec![0, 0, 0, 1, 0];
        big.extend([7; 256]);
        assert_eq!(after(&[&big]), Position::START);
        assert_eq!(after(&[&big[..100], &big[100..]]), Position::START);
    }

    #[test]
    fn a_body_cut_short_says_where() {
        assert_eq!(
            after(&[&[0, 0, 0]]).cut_short().as_deref(),
            Some("ends 3 bytes into a message's 5-byte gRPC prefix")
        );
        assert_eq!(
            after(&[&[0, 0, 0, 0, 10, 1, 2, 3]]).cut_short().as_deref(),
            Some("ends 7 bytes before the end of the gRPC message its prefix announced")
        );
        let mut big = vec![0, 0, 0, 1, 0];
        big.extend([7; 255]);
        assert_eq!(after(&[&big]), Position::Message { left: 1 });
        assert!(after(&[&big[..3]]).cut_short().is_some());
    }
}
