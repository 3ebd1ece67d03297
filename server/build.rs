//! Rebuilds the crate when a migration is added. `sqlx::migrate!` embeds `migrations/` when
//! the crate compiles, and Cargo reruns the macro only when a file it already knows changes: a
//! new migration is a new file, so without this a build could keep the previous list of
//! migrations. This is the build script sqlx recommends for `migrate!`.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
