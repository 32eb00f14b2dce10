//! The protobuf codec of callscope's services: prost's, except that a
//! request body that is not a valid message (truncated, random bytes,
//! invalid UTF-8 in a string) is the client's mistake, `INVALID_ARGUMENT`
//! with a `google.rpc.BadRequest`, not the `INTERNAL` prost's codec answers.
//! `build.rs` names it as the codec of every generated service and client.

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

use crate::domain::Violations;

/// [`ProstCodec`] with decode errors answered as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ValidatingCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ValidatingCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::new())
    }
}

impl<T, U> Codec for ValidatingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ValidatingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ValidatingDecoder(self.0.decoder())
    }
}

/// Decodes like prost; a malformed body becomes `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct ValidatingDecoder<U>(tonic_prost::ProstDecoder<U>);

impl<U: Message + Default> Decoder for ValidatingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| malformed(&e.to_string()).into())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
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
