//! The protobuf codec of callscope's services: prost's, except that a
//! request body that is not a valid message (truncated, random bytes,
//! invalid UTF-8 in a string) is the client's mistake, `INVALID_ARGUMENT`
//! with a `google.rpc.BadRequest`, not the `INTERNAL` prost's codec answers;
//! and messages are encoded and decoded through contiguous bytes.
//! `build.rs` names it as the codec of every generated service and client.

use std::marker::PhantomData;

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::domain::Violations;

/// prost's messages, with decode errors answered as `INVALID_ARGUMENT`,
/// encoded and decoded through contiguous bytes. Its encoder and decoder
/// take tonic's default buffer settings, as `tonic_prost::ProstCodec`'s do.
#[derive(Debug, Clone)]
pub struct ValidatingCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ValidatingCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ValidatingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ContiguousEncoder<T>;
    type Decoder = ValidatingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ContiguousEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ValidatingDecoder(PhantomData)
    }
}

/// Encodes like prost, but into a `Vec` of the message's exact length that
/// is then copied into tonic's buffer whole. prost writes a message a field
/// at a time, a few bytes each: into tonic's buffer every write passes its
/// `BufMut` layers (capacity, bounds, length), into a `Vec` it is a push.
/// A page of 15 calls took 48% fewer instructions to encode this way
/// (callgrind, BENCHMARKS.md, fourteenth session). The message's bytes are
/// held twice while they are copied (the old path copied too, each time
/// tonic's buffer grew); tonic checks a service's sending limit after
/// encoding, as before.
#[derive(Debug)]
pub struct ContiguousEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ContiguousEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item.encode_to_vec());
        Ok(())
    }
}

/// Decodes like prost; a malformed body becomes `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct ValidatingDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ValidatingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // tonic calls a decoder once a message is whole, in one buffer, so
        // its first chunk holds all of it. Read from a plain slice, prost
        // decodes it in 37% fewer instructions than through tonic's `Buf`
        // (callgrind, the suite's listings). Reading through the `Buf` stays
        // as the fallback, should tonic ever hand over a message in pieces.
        let len = buf.remaining();
        let decoded = match buf.chunk().get(..len) {
            Some(whole) => {
                let decoded = U::decode(whole);
                buf.advance(len);
                decoded
            }
            None => U::decode(&mut *buf),
        };
        decoded
            .map(Some)
            .map_err(|e| malformed(&e.to_string()).into())
    }
}

/// The violation of a body prost could not decode. prost's message names
/// the fields it was in, innermost first (`CallFilter.phone:
/// ListCallsRequest.filter: invalid string value…`): they become the path
/// (`filter.phone`); with none, the violation names the body.
fn malformed(error: &str) -> Violations {
    let rest = error
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(error);
    let mut fields = Vec::new();
    let mut description = rest;
    while let Some((head, tail)) = description.split_once(": ") {
        let Some((message, field)) = head.split_once('.') else {
            break;
        };
        let ident =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ident(message) || !ident(field) {
            break;
        }
        fields.push(field);
        description = tail;
    }
    fields.reverse();
    let field = if fields.is_empty() {
        "body".to_owned()
    } else {
        fields.join(".")
    };
    Violations::one(
        field,
        format!("is not a valid protobuf message: {description}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_field() {
        let v = malformed(
            "failed to decode Protobuf message: CallFilter.phone: ListCallsRequest.filter: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(v.0[0].field, "filter.phone");
        assert_eq!(
            v.0[0].description,
            "is not a valid protobuf message: invalid string value: data is not UTF-8 encoded"
        );
        let v = malformed("failed to decode Protobuf message: buffer underflow");
        assert_eq!(v.0[0].field, "body");
    }

    #[test]
    fn garbage_is_invalid_argument() {
        // Field 1 (call_id), length 5, but only 2 bytes follow.
        let status: Status = match crate::proto::GetCallRequest::decode(&[0x0a, 5, b'a', b'b'][..])
        {
            Err(e) => malformed(&e.to_string()).into(),
            Ok(_) => panic!("decoded a truncated message"),
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
