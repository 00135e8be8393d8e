//! The media type of a file from its extension: a small table of the
//! formats people send from a messenger. Anything else is
//! `application/octet-stream`, which every recipient can still save; the
//! box never looks inside.

use std::path::Path;

/// Extensions (lowercase) and their media types.
const TABLE: &[(&str, &str)] = &[
    // Images.
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("avif", "image/avif"),
    ("svg", "image/svg+xml"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    // Audio.
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    // Video.
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("mov", "video/quicktime"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("avi", "video/x-msvideo"),
    // Documents and archives.
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
    ("csv", "text/csv"),
    ("json", "application/json"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("doc", "application/msword"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xls", "application/vnd.ms-excel"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("ppt", "application/vnd.ms-powerpoint"),
    ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("7z", "application/x-7z-compressed"),
    ("vcf", "text/vcard"),
    ("ics", "text/calendar"),
];

/// The media type for content of unknown kind.
pub const UNKNOWN: &str = "application/octet-stream";

/// The media type of `path` by its extension (case ignored).
///
/// ```
/// use imbox_client::attachments::media_type::for_path;
/// assert_eq!(for_path("IMG_0001.JPG".as_ref()), "image/jpeg");
/// assert_eq!(for_path("notes".as_ref()), "application/octet-stream");
/// ```
pub fn for_path(path: &Path) -> &'static str {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else { return UNKNOWN };
    TABLE
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map_or(UNKNOWN, |(_, media_type)| media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_a_valid_media_type_and_extensions_are_unique() {
        for (i, (extension, media_type)) in TABLE.iter().enumerate() {
            assert!(imbox_protocol::attachment::valid_media_type(media_type), "{media_type}");
            assert_eq!(*extension, extension.to_ascii_lowercase());
            assert!(!TABLE[..i].iter().any(|(e, _)| e == extension), "{extension} twice");
        }
        assert_eq!(for_path(Path::new("/tmp/voice.Opus")), "audio/ogg");
        assert_eq!(for_path(Path::new("archive.tar.gz")), "application/gzip");
        assert_eq!(for_path(Path::new(".bashrc")), UNKNOWN);
    }
}
