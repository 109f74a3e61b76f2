//! The `Long` scalar: 64-bit integers (epoch milliseconds overflow GraphQL's 32-bit `Int`).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A 64-bit signed integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Long(pub i64);

/// A 64-bit signed integer, such as an epoch time in milliseconds. Written as a JSON number; accepted as a number or a decimal string.
#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n
                .as_i64()
                .map(Long)
                .ok_or_else(|| InputValueError::custom("Long must be a 64-bit integer")),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Long)
                .map_err(|_| InputValueError::custom("Long must be a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}
