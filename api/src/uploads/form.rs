//! Reading a multipart form: its framing held to the limits, the output fields read and
//! checked, and each video part handed to a [`VideoSink`](super::storing::VideoSink).

use super::export::{EXPORT_KEY, EXPORT_TO, EXPORT_URL, ExportAsked};
use super::refusal::{UploadError, parser_error};
use super::storing::{VideoSink, read_video_part};
use crate::{
    gateway::{Gateway, UploadLimits},
    uploads::file::{self},
    uploads::framing::{self, FrameGuard, FramingError},
};
use audiomill_domain::{
    output::{FieldError, OutputOptions, OutputRequest},
    webhook::{self, WebhookUrl},
};
use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use poem::Body;
use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

/// Reads and drops a body that is refused before it is read (for at most [`DRAIN_PATIENCE`]),
/// so the client sees the answer instead of a reset connection.
pub async fn refuse_unread(body: Body) {
    let mut rest = body.into_bytes_stream();
    let _ = tokio::time::timeout(DRAIN_PATIENCE, async {
        while let Some(Ok(_)) = rest.next().await {}
    })
    .await;
}

/// Opens an upload's multipart `body`, which must name its boundary.
pub(crate) fn open_upload(
    gw: &Gateway,
    content_type: &str,
    body: Body,
) -> Result<FormBody, UploadError> {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return Err(UploadError::bad(
            "The body must be multipart/form-data with a boundary.",
        ));
    };
    Ok(open_form(body, boundary, &gw.limits))
}

/// A multipart body on its way in: the parser, behind the minimum-rate check and the framing
/// guard, which note here why they stopped the body.
pub struct FormBody {
    pub multipart: multer::Multipart<'static>,
    /// The body under the parser, kept to read what is left after a refusal (the parser
    /// stops at its own limits, but a client must be able to finish sending to read the 4xx).
    raw: Arc<tokio::sync::Mutex<RawBody>>,
    too_slow: Arc<AtomicBool>,
    framing: Arc<OnceLock<FramingError>>,
}

impl FormBody {
    /// Why the body itself was stopped, if it was.
    pub fn trouble(&self) -> Option<UploadError> {
        if self.too_slow.load(Ordering::Relaxed) {
            return Some(UploadError::TooSlow);
        }
        let framing = self.framing.get()?;
        Some(UploadError::bad(format!(
            "The multipart body is malformed: {framing}."
        )))
    }

    /// The answer once the form was read to `outcome`: a body that arrived too slowly or broke
    /// the framing explains any refusal best (the parser's own error is only its echo, and
    /// reading on would be pointless); a refused body is drained first.
    pub(crate) async fn settle<T>(self, outcome: Result<T, UploadError>) -> Result<T, UploadError> {
        if let Some(trouble) = self.trouble() {
            return Err(trouble);
        }
        if outcome.is_err() {
            self.drain().await;
        }
        outcome
    }

    /// Reads and drops the rest of a refused upload, for at most [`DRAIN_PATIENCE`], so the
    /// client sees the answer instead of a connection reset in the middle of its upload. A
    /// client that sends too slowly is cut off by the minimum-rate check meanwhile.
    async fn drain(self) {
        drop(self.multipart);
        let rest = async {
            let mut raw = self.raw.lock().await;
            while let Some(Ok(_)) = raw.next().await {}
        };
        let _ = tokio::time::timeout(DRAIN_PATIENCE, rest).await;
    }
}

/// The longest a refused upload's rest is read before the answer.
const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a multipart `body` with the form's limits (see [`form`]).
pub fn open_form(body: Body, boundary: String, limits: &UploadLimits) -> FormBody {
    let too_slow = Arc::new(AtomicBool::new(false));
    let framing = Arc::new(OnceLock::new());
    let timed: RawBody =
        file::at_minimum_rate(Box::pin(body.into_bytes_stream()), too_slow.clone())
            // Fused: the parser may have read it to its end before the rest is drained.
            .fuse()
            .boxed();
    let raw = Arc::new(tokio::sync::Mutex::new(timed));
    let shared = futures::stream::unfold(raw.clone(), |raw| async move {
        let next = raw.lock().await.next().await;
        next.map(|chunk| (chunk, raw))
    });
    let mut guard = FrameGuard::new(&boundary);
    let broken = framing.clone();
    let guarded = shared.map(move |chunk| {
        let chunk = chunk?;
        guard.observe(&chunk).map_err(|error| {
            let _ = broken.set(error);
            std::io::Error::new(std::io::ErrorKind::InvalidData, error)
        })?;
        Ok::<_, std::io::Error>(chunk)
    });
    let constraints = framing::constraints(limits.max_bytes, limits.max_files);
    FormBody {
        multipart: multer::Multipart::with_constraints(guarded, boundary, constraints),
        raw,
        too_slow,
        framing,
    }
}

/// A form read whole: its videos, as the sink kept them, and the MP3s it asks for.
pub struct ReadForm<K> {
    pub videos: Vec<K>,
    pub options: OutputOptions,
    /// Where to tell of the upload's jobs as they end, besides registered endpoints.
    pub callback: Option<WebhookUrl>,
    /// Where their MP3s go besides Audiomill's storage, as asked (checked when they start).
    pub export: ExportAsked,
}

/// The form field naming a one-off webhook endpoint for the upload's jobs.
pub const CALLBACK_FIELD: &str = "callback_url";

/// How many `file` parts a form may have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FileLimit {
    /// Up to this many, a batch.
    Batch(usize),
    /// One: an `Idempotency-Key` names one file's upload.
    Keyed,
}

impl FileLimit {
    fn max(self) -> usize {
        match self {
            Self::Batch(max) => max,
            Self::Keyed => 1,
        }
    }

    fn refusal(self) -> FieldError {
        FieldError {
            field: "file",
            message: match self {
                Self::Batch(max) => format!(
                    "is given more than {max} times: one upload carries at most {max} files"
                ),
                Self::Keyed => "is given more than once: with an Idempotency-Key an upload \
                                carries one file (send a batch without one)"
                    .into(),
            },
        }
    }
}

/// The form's parts other than files, as they are read.
#[derive(Default)]
struct TextFields {
    request: OutputRequest,
    /// The first field the form has no use for: refused once the part limits have spoken.
    unknown: Option<String>,
    callback: Option<WebhookUrl>,
    export: ExportAsked,
}

impl TextFields {
    /// Takes the field `name`: an output choice, the callback URL, or one to refuse.
    async fn take(
        &mut self,
        gw: &Gateway,
        field: multer::Field<'static>,
        name: String,
    ) -> Result<(), UploadError> {
        if name == CALLBACK_FIELD {
            let value = field_text(field, &name, &gw.limits).await?;
            self.callback = callback_url(gw, &value).await?;
            return Ok(());
        }
        if ExportAsked::takes(&name) {
            let value = field_text(field, &name, &gw.limits).await?;
            return self.export.add(&name, &value);
        }
        if !OutputRequest::takes(&name) {
            // The parser skips its body; the refusal waits for the part limits to speak.
            self.unknown.get_or_insert(name);
            return Ok(());
        }
        let value = field_text(field, &name, &gw.limits).await?;
        self.request
            .add(&name, &value)
            .map_err(UploadError::BadField)
    }
}

/// Reads the whole form: one `file` part or more (up to `files`), each given to `sink`, and the output fields
/// ([`OutputRequest::FIELDS`]), each checked as it arrives. A field the upload does not take
/// is refused at the file (nothing stored) or at the end of the form; its body is skipped
/// meanwhile, within the form's limits. How the fields go together is checked once all are
/// in; what the sink kept is undone when the form turns out bad after the file.
pub(crate) async fn read_form<S: VideoSink>(
    gw: &Gateway,
    multipart: &mut multer::Multipart<'static>,
    sink: &S,
    files: FileLimit,
) -> Result<ReadForm<S::Kept>, UploadError> {
    let mut stored: Vec<S::Kept> = Vec::new();
    let mut texts = TextFields::default();
    let mut fields = 0;
    let outcome = loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break Ok(()),
            Err(error) => break Err(parser_error(&error, &gw.limits)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            fields += 1;
            if fields > framing::MAX_FIELDS {
                break Err(UploadError::bad(format!(
                    "The form has more than {} parts besides its files.",
                    framing::MAX_FIELDS
                )));
            }
            match texts.take(gw, field, name).await {
                Ok(()) => continue,
                Err(error) => break Err(error),
            }
        }
        if let Some(name) = texts.unknown.take() {
            break Err(unknown_field(&name));
        }
        if stored.len() == files.max() {
            break Err(UploadError::BadField(files.refusal()));
        }
        let part = match read_video_part(field, &gw.limits).await {
            Ok(part) => part,
            Err(error) => break Err(error),
        };
        match sink.keep(part).await {
            Ok(kept) => stored.push(kept),
            Err(error) => break Err(error),
        }
    };
    let callback = texts.callback.take();
    let export = std::mem::take(&mut texts.export);
    let outcome = outcome.and_then(|()| match texts.unknown {
        Some(name) => Err(unknown_field(&name)),
        None => texts.request.resolve().map_err(UploadError::BadField),
    });
    match outcome {
        Ok(_) if stored.is_empty() => Err(UploadError::bad("The form has no `file` part.")),
        Ok(options) => Ok(ReadForm {
            videos: stored,
            options,
            callback,
            export,
        }),
        Err(error) => {
            for kept in &stored {
                sink.undo(kept).await;
            }
            Err(error)
        }
    }
}

/// An output field's value: UTF-8 text within the form's limit for fields.
async fn field_text(
    field: multer::Field<'static>,
    name: &str,
    limits: &UploadLimits,
) -> Result<String, UploadError> {
    let bytes = field
        .bytes()
        .await
        .map_err(|error| parser_error(&error, limits))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        UploadError::BadField(FieldError {
            field: OutputRequest::FIELDS
                .into_iter()
                .chain([CALLBACK_FIELD])
                .find(|f| *f == name)
                .unwrap_or("form"),
            message: "must be UTF-8 text".into(),
        })
    })
}

/// An upload's `callback_url`: a URL webhooks may reach, resolved now (and again at each
/// delivery), as for a registered endpoint.
pub async fn callback_url(gw: &Gateway, text: &str) -> Result<Option<WebhookUrl>, UploadError> {
    // An empty field is one left blank, as a browser's form sends it: no callback.
    if text.trim().is_empty() {
        return Ok(None);
    }
    let refused = |why: String| {
        UploadError::BadField(FieldError {
            field: CALLBACK_FIELD,
            message: format!("is not acceptable: {why}"),
        })
    };
    let url = WebhookUrl::parse(text.trim()).map_err(|why| refused(why.to_string()))?;
    webhook::resolve(&url, gw.webhook_allow_private)
        .await
        .map_err(|refusal| refused(refusal.to_string()))?;
    Ok(Some(url))
}

/// The output choices and `callback_url` of a resumable upload, from its metadata's pairs
/// named as the form's fields and checked as the form checks them. Other pairs are left
/// alone: tus clients add their own (`filetype`, `relativePath`, ...).
pub async fn choices_from_metadata(
    gw: &Gateway,
    pairs: &std::collections::BTreeMap<String, String>,
) -> Result<ReadForm<()>, UploadError> {
    let mut request = OutputRequest::default();
    let mut callback = None;
    let mut export = ExportAsked::default();
    for (name, value) in pairs {
        if name == CALLBACK_FIELD {
            callback = callback_url(gw, value).await?;
        } else if ExportAsked::takes(name) {
            export.add(name, value)?;
        } else if OutputRequest::takes(name) {
            request.add(name, value).map_err(UploadError::BadField)?;
        }
    }
    Ok(ReadForm {
        videos: Vec::new(),
        options: request.resolve().map_err(UploadError::BadField)?,
        callback,
        export,
    })
}

fn unknown_field(name: &str) -> UploadError {
    UploadError::bad(format!(
        "The form has a field `{}` this upload does not take; it takes `file` and {}.",
        name.escape_debug(),
        OutputRequest::FIELDS
            .iter()
            .chain([&CALLBACK_FIELD, &EXPORT_TO, &EXPORT_KEY, &EXPORT_URL])
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

type RawBody = BoxStream<'static, Result<Bytes, std::io::Error>>;
