//! Generates the Rust code for `telesub.v1` with a pure-Rust protobuf compiler, so no system
//! `protoc` is needed. The same descriptor set is written out for server reflection.
//!
//! With the `json` feature it also generates, under `OUT_DIR/json`, the messages again with
//! serde implementations in protobuf's JSON mapping (see `json` in `src/lib.rs`).

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let dir = root.join("telesub/v1");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "proto"));
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("telesub_descriptor.bin"), fds.encode_to_vec())?;
    #[cfg(feature = "json")]
    json::generate(&fds, &out.join("json"))?;
    tonic_prost_build::configure().emit_rerun_if_changed(false).compile_fds(fds)?;
    Ok(())
}

#[cfg(feature = "json")]
mod json {
    use std::{fmt::Write as _, fs, path::Path};

    use prost::Message;
    use tonic_prost_build::FileDescriptorSet;

    /// Writes, into `dir`: the messages of `telesub.v1` as prost generates them, except that
    /// the well-known types are pbjson-types', serde-ready, and `google.protobuf.Timestamp` the
    /// crate's own `json::Timestamp` (written with `Z`, as proto3 JSON has it) (`telesub.v1.rs`);
    /// their serde implementations by pbjson-build (`telesub.v1.serde.rs`); and `to_json.rs`,
    /// which pairs each top-level message of the API with its JSON twin.
    ///
    /// A second set of messages, rather than serde on the API's own: those hold prost-types'
    /// `Timestamp`, which has no serde implementation and, being foreign, cannot be given one
    /// here; swapping it for pbjson-types' under a feature would change the hub's types
    /// whenever a build enables the feature for any crate. The twins have the same fields and
    /// field numbers, so a message becomes its twin through its protobuf encoding, exactly.
    pub(super) fn generate(fds: &FileDescriptorSet, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
        fs::create_dir_all(dir)?;
        tonic_prost_build::Config::new()
            .out_dir(dir)
            // Instead of prost-types' well-known types, the default.
            .compile_well_known_types()
            .extern_path(".google.protobuf", "::pbjson_types")
            .extern_path(".google.protobuf.Timestamp", "crate::json::Timestamp")
            .compile_fds(fds.clone())?;
        pbjson_build::Builder::new()
            .register_descriptors(&fds.encode_to_vec())?
            .out_dir(dir)
            .extern_path(".google.protobuf", "::pbjson_types")
            .extern_path(".google.protobuf.Timestamp", "crate::json::Timestamp")
            .build(&[".telesub.v1"])?;
        let mut pairs = String::new();
        for file in fds.file.iter().filter(|f| f.package() == "telesub.v1") {
            for message in &file.message_type {
                // The API's message names are already UpperCamelCase, the name prost gives
                // the Rust type.
                let name = message.name();
                writeln!(pairs, "impl ToJson for crate::v1::{name} {{ type Json = v1::{name}; }}")?;
            }
        }
        fs::write(dir.join("to_json.rs"), pairs)?;
        Ok(())
    }
}
