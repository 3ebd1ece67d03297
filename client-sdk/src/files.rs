//! Files the hub sends in chunks (a list's export, the audit export and its proof, the public
//! statistics, a published device list), saved to disk.
//!
//! Each file is written beside its final name as `NAME.part`, flushed to disk and only then
//! renamed: a file cut short (the connection lost, the hub refusing half-way, the disk full)
//! never takes the name, and the `.part` is removed. The hub suggests a name in the first
//! chunk of each file; only its last component is kept, in characters safe on every system,
//! so a suggestion can never write outside the folder asked for. A chunk that names a file
//! after the first begins the next file, saved beside the first; a proof (a name ending in
//! `.proof`) goes beside the file it proves, under that file's name, whatever it was called.
//!
//! ```no_run
//! # async fn run(client: telesub_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use telesub_client::{files, proto};
//! let request = proto::ExportReconciliationRequest { update_id: "2026-03".into(), ..Default::default() };
//! let chunks = client.export_reconciliation(request).await?;
//! for file in files::save(chunks, files::Destination::Folder("exports".as_ref()), "2026-03.csv").await? {
//!     println!("saved {} ({} bytes)", file.path.display(), file.bytes);
//! }
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::{Error, proto::FileChunk};

/// Where the first file goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// Into this folder, under the name the hub suggests (the fallback when it suggests none).
    Folder(&'a Path),
    /// Exactly this path; files after the first go beside it.
    File(&'a Path),
}

/// A file written whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// The media type the hub gave, such as `text/csv; charset=utf-8` (empty when none).
    pub content_type: String,
}

/// Why a file was not saved. Files finished before it stay saved; the one being written is
/// removed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The hub refused the export or failed during it.
    #[error(transparent)]
    Hub(#[from] Error),
    /// The hub answered without a single chunk.
    #[error("the hub sent no file")]
    NoFile,
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Saves every file of `chunks` (see the module's documentation); returns them in order.
pub async fn save(
    chunks: impl Stream<Item = Result<FileChunk, Error>>,
    to: Destination<'_>,
    fallback: &str,
) -> Result<Vec<SavedFile>, SaveError> {
    let mut chunks = std::pin::pin!(chunks);
    let first = chunks.next().await.ok_or(SaveError::NoFile)??;
    let mut path = match to {
        Destination::Folder(dir) => dir.join(file_name(&first.file_name, fallback)),
        Destination::File(path) => path.to_owned(),
    };
    let mut saved = Vec::new();
    let mut chunk = Some(first);
    while let Some(first) = chunk {
        let content_type = first.content_type.clone();
        let (bytes, next) = save_one(&mut chunks, first, &path).await?;
        chunk = next;
        let done = SavedFile { path, bytes, content_type };
        path = match &chunk {
            Some(next) => beside(&done.path, &file_name(&next.file_name, "more")),
            None => PathBuf::new(),
        };
        saved.push(done);
    }
    Ok(saved)
}

/// A name the hub suggests, reduced to a plain file name: its last component, characters
/// other than letters, digits, `-`, `_`, `.` and space replaced by `_`, no leading dot; the
/// fallback (reduced the same way) when nothing is left.
pub fn file_name(suggested: &str, fallback: &str) -> String {
    let clean = |name: &str| -> String {
        let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
        let name: String =
            last.chars().map(|c| if c.is_alphanumeric() || "-_. ".contains(c) { c } else { '_' }).collect();
        name.trim().trim_start_matches('.').to_owned()
    };
    match clean(suggested) {
        name if name.is_empty() => clean(fallback),
        name => name,
    }
}

/// Where a file named `name` goes after the file saved at `previous`.
fn beside(previous: &Path, name: &str) -> PathBuf {
    if name.ends_with(".proof") {
        PathBuf::from(format!("{}.proof", previous.display()))
    } else {
        previous.parent().map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
    }
}

/// Writes one file, from `first` until the next chunk that names a file (returned) or the end.
async fn save_one(
    chunks: &mut std::pin::Pin<&mut impl Stream<Item = Result<FileChunk, Error>>>,
    first: FileChunk,
    path: &Path,
) -> Result<(u64, Option<FileChunk>), SaveError> {
    let partial = PathBuf::from(format!("{}.part", path.display()));
    let written = write_part(chunks, first, &partial).await;
    let renamed = match written {
        Ok(done) => tokio::fs::rename(&partial, path)
            .await
            .map(|()| done)
            .map_err(|source| SaveError::Write { path: path.to_owned(), source }),
        Err(e) => Err(e),
    };
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    renamed
}

async fn write_part(
    chunks: &mut std::pin::Pin<&mut impl Stream<Item = Result<FileChunk, Error>>>,
    first: FileChunk,
    partial: &Path,
) -> Result<(u64, Option<FileChunk>), SaveError> {
    let cannot_write = |source| SaveError::Write { path: partial.to_owned(), source };
    let mut file = tokio::fs::File::create(partial).await.map_err(cannot_write)?;
    file.write_all(&first.data).await.map_err(cannot_write)?;
    let mut bytes = first.data.len() as u64;
    let next = loop {
        match chunks.next().await.transpose()? {
            None => break None,
            Some(c) if !c.file_name.is_empty() => break Some(c),
            Some(c) => {
                file.write_all(&c.data).await.map_err(cannot_write)?;
                bytes += c.data.len() as u64;
            }
        }
    };
    file.sync_all().await.map_err(cannot_write)?;
    Ok((bytes, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(name: &str, data: &[u8]) -> Result<FileChunk, Error> {
        Ok(FileChunk { file_name: name.to_owned(), content_type: "text/csv".to_owned(), data: data.to_vec() })
    }

    fn refused() -> Result<FileChunk, Error> {
        Err(Error::from(tonic::Status::unavailable("the hub is stopping")))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn files_are_saved_whole_under_the_suggested_name_and_a_proof_beside_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = futures_util::stream::iter(vec![
            chunk("audit-1-3.csv", b"a,b\r\n"),
            chunk("", b"1,2\r\n"),
            chunk("audit-1-3.csv.proof", b"proof"),
        ]);
        let saved = save(chunks, Destination::Folder(dir.path()), "audit.csv").await.unwrap();
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0].path, dir.path().join("audit-1-3.csv"));
        assert_eq!(saved[0].bytes, 10);
        assert_eq!(std::fs::read(&saved[0].path).unwrap(), b"a,b\r\n1,2\r\n");
        assert_eq!(std::fs::read(&saved[1].path).unwrap(), b"proof");
        assert_eq!(names(dir.path()), ["audit-1-3.csv", "audit-1-3.csv.proof"]);

        // Under a name of the caller's, the proof follows that name.
        let mine = dir.path().join("mine.csv");
        let chunks = futures_util::stream::iter(vec![chunk("x.csv", b"1"), chunk("x.csv.proof", b"p")]);
        let saved = save(chunks, Destination::File(&mine), "audit.csv").await.unwrap();
        assert_eq!(saved[1].path, dir.path().join("mine.csv.proof"));
    }

    #[tokio::test]
    async fn a_file_cut_short_takes_no_name_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = futures_util::stream::iter(vec![chunk("list.csv", b"a,b\r\n"), chunk("", b"1,2\r\n"), refused()]);
        let err = save(chunks, Destination::Folder(dir.path()), "list.csv").await.unwrap_err();
        assert!(matches!(err, SaveError::Hub(Error::Unavailable(_))), "{err:?}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

        // The proof fails: the file before it stays, whole.
        let chunks = futures_util::stream::iter(vec![chunk("a.csv", b"1"), chunk("a.csv.proof", b"p"), refused()]);
        save(chunks, Destination::Folder(dir.path()), "a.csv").await.unwrap_err();
        assert_eq!(names(dir.path()), ["a.csv"]);

        let none = futures_util::stream::iter(Vec::<Result<FileChunk, Error>>::new());
        assert!(matches!(save(none, Destination::Folder(dir.path()), "x").await, Err(SaveError::NoFile)));
    }

    #[tokio::test]
    async fn an_unwritable_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let chunks = futures_util::stream::iter(vec![chunk("list.csv", b"1")]);
        let err = save(chunks, Destination::Folder(&missing), "list.csv").await.unwrap_err();
        assert!(err.to_string().contains("no-such-folder/list.csv.part"), "{err}");
    }

    #[test]
    fn a_suggested_name_cannot_leave_the_folder() {
        assert_eq!(file_name("VNPT-2025-03.xlsx", "x.xlsx"), "VNPT-2025-03.xlsx");
        assert_eq!(file_name("../../etc/passwd", "x.csv"), "passwd");
        assert_eq!(file_name("..\\..\\boot.ini", "x.csv"), "boot.ini");
        assert_eq!(file_name("C:\\Users\\a.csv", "x.csv"), "a.csv");
        assert_eq!(file_name("..", "2025/03.csv"), "03.csv");
        assert_eq!(file_name("", "2026-03 VNPT.xlsx"), "2026-03 VNPT.xlsx");
        assert_eq!(file_name("a:b*c?.csv", "x"), "a_b_c_.csv");
        assert_eq!(file_name(".hidden", "x"), "hidden");
    }
}
