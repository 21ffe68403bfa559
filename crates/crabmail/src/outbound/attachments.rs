//! A send's attachments as bytes: decoded from `content_base64`, or taken from one of the
//! account's uploads (`upload_id`). Exactly one of the two per attachment; an upload that is not
//! the account's, or expired, is refused like a missing one.

use super::SubmitError;
use super::compose::{self, Attachment, Invalid};
use crate::clock::Timestamp;
use crate::store::SharedStore;
use crabmail_api::OutgoingAttachment;

pub(super) async fn resolve(
    store: &SharedStore,
    account_id: &str,
    now: Timestamp,
    attachments: &[OutgoingAttachment],
) -> Result<Vec<Attachment>, SubmitError> {
    let mut resolved = Vec::with_capacity(attachments.len());
    for (i, a) in attachments.iter().enumerate() {
        let field = format!("attachments[{i}]");
        let attachment = match (&a.content_base64, &a.upload_id) {
            (Some(base64), None) => {
                compose::decode_attachment(i, &a.filename, a.content_type.as_deref(), base64)?
            }
            (None, Some(upload_id)) => {
                let upload = store
                    .get_upload(account_id, upload_id, now)
                    .await?
                    .ok_or_else(|| Invalid {
                        field: format!("{field}.upload_id"),
                        message: format!(
                            "no upload {upload_id} (uploads are this account's, kept 24 hours)"
                        ),
                    })?;
                let filename = if a.filename.is_empty() {
                    &upload.filename
                } else {
                    &a.filename
                };
                let content_type = a.content_type.as_deref().unwrap_or(&upload.content_type);
                compose::attachment(i, filename, Some(content_type), upload.data)?
            }
            _ => {
                return Err(Invalid {
                    field,
                    message: "give one of content_base64 and upload_id".into(),
                }
                .into());
            }
        };
        resolved.push(attachment);
    }
    Ok(resolved)
}
