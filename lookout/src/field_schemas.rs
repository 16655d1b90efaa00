//! Schemas of payload fields that no Rust type describes as the engine reads them:
//! what the payload types name in `#[schema(schema_with = …)]` (the whole documents
//! are made in schemas.rs).

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

/// `score`: Sprint.ly sizes are strings (`~`, `S`…), numbers are taken too.
pub(crate) fn score() -> Schema {
    let string = ObjectBuilder::new().schema_type(Type::String);
    let number = ObjectBuilder::new().schema_type(Type::Number);
    let null = ObjectBuilder::new().schema_type(Type::Null);
    OneOfBuilder::new()
        .item(string)
        .item(number)
        .item(null)
        .description(Some("A size (`~`, `S`, `M`, `L`, `XL`) or a number"))
        .into()
}

/// `tags`: a list of strings; null is taken as none.
pub(crate) fn tags() -> Schema {
    let list = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
    let null = ObjectBuilder::new().schema_type(Type::Null);
    OneOfBuilder::new().item(list).item(null).into()
}
