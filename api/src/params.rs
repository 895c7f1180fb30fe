//! Checked values as the API exposes them: [`ApiJobId`] is a [`JobId`] (and [`ApiBatchId`] a
//! [`BatchId`]) in paths, queries and bodies, documented as a UUID string, so a malformed id is refused by the framework (400)
//! before any handler runs, and generated clients get a UUID type.

use audiomill_domain::{BatchId, ConnectionId, JobId, UploadId, UserId, WatchId, WebhookId};
use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use std::{borrow::Cow, fmt};

/// An id of the domain as the API takes and shows it: its canonical, lower-case hyphenated
/// UUID spelling only.
macro_rules! api_uuid {
    ($(#[$doc:meta])* $name:ident($id:ty), $what:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $id);

        impl $name {
            /// The id the OpenAPI document's examples show.
            pub fn example() -> Self {
                Self(<$id>::parse($example).expect("a canonical UUID"))
            }
        }

        impl From<$id> for $name {
            fn from(id: $id) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                "string_uuid".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "uuid")))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                <$id>::parse(value)
                    .map(Self)
                    .map_err(|_| ParseError::custom(concat!("not a ", $what, " (a lower-case UUID)")))
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(text)) => Self::parse_from_parameter(&text),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.to_string()))
            }
        }
    };
}

api_uuid!(
    /// A job id.
    ApiJobId(JobId),
    "job id",
    "019a9f3c-5b2e-7c41-9d8e-2f6a4b1c0d3e"
);
api_uuid!(
    /// A batch id: the jobs of one upload with several files.
    ApiBatchId(BatchId),
    "batch id",
    "019a9f3c-5b2e-7c41-9d8e-7a1b2c3d4e5f"
);

api_uuid!(
    /// A webhook endpoint's id.
    ApiWebhookId(WebhookId),
    "webhook id",
    "019a9f3c-5b2e-7c41-9d8e-3c4d5e6f7a8b"
);

api_uuid!(
    /// A storage connection's id.
    ApiConnectionId(ConnectionId),
    "connection id",
    "019a9f3c-5b2e-7c41-9d8e-4d5e6f7a8b9c"
);

api_uuid!(
    /// A watch's id.
    ApiWatchId(WatchId),
    "watch id",
    "019a9f3c-5b2e-7c41-9d8e-6f7a8b9c0d1e"
);

api_uuid!(
    /// A user's id.
    ApiUserId(UserId),
    "user id",
    "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
);

api_uuid!(
    /// A resumable upload's id.
    ApiUploadId(UploadId),
    "upload id",
    "019a9f3c-5b2e-7c41-9d8e-5e6f7a8b9c0d"
);

/// A time as the API writes it: RFC 3339, UTC, to the second.
pub(crate) fn rfc3339(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_is_a_job_id() {
        let id = JobId::generate();
        let parsed = ApiJobId::parse_from_parameter(&id.to_string()).unwrap();
        assert_eq!(parsed.0, id);
        for bad in [
            "not-a-job-id".to_owned(),
            id.to_string().to_uppercase(),
            id.to_string().replace('-', ""),
            format!("{{{id}}}"),
            String::new(),
        ] {
            assert!(ApiJobId::parse_from_parameter(&bad).is_err(), "{bad}");
        }
        assert_eq!(parsed.to_json(), Some(Value::String(id.to_string())));
    }
}

/// Text in a JSON body: a JSON string only. (poem-openapi's `String` also takes a number or a
/// boolean and spells it, so `"name": false` would be the name "false".)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// Output choices sent as JSON, as the form's text values: strings as they are, numbers and
/// booleans written out; anything else (a list, an object, `null`) is refused naming its field.
pub(crate) fn option_texts(
    options: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<std::collections::BTreeMap<String, String>, crate::error::ErrorJson> {
    options
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                _ => {
                    return Err(crate::error::ErrorBody::for_field(
                        name,
                        format!("`{name}` must be a string, a number or a boolean."),
                    ));
                }
            };
            Ok((name.clone(), text))
        })
        .collect()
}
