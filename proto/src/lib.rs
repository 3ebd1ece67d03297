//! The telesub gRPC contract: messages and services of package `telesub.v1`, generated at
//! build time from the `.proto` files beside this crate.

/// Package `telesub.v1`.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("telesub.v1");
}

/// The encoded `FileDescriptorSet` of every telesub service, for server reflection and for
/// tests that walk every method.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("telesub_descriptor");
