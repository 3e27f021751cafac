//! The workshop's downloadable files in an S3 bucket, for the portal Lambda's
//! `/assets/` (what the original workshop served from its S3 static site).

use aws_sdk_s3::error::DisplayErrorContext;
use hq_core::ports::AssetStore;
use hq_core::StoreError;

/// The largest file served through the Lambda: its response may not exceed
/// 6 MB. Larger files are for presigned links (infra/README.md).
pub const MAX_ASSET_BYTES: i64 = 5 << 20;

pub struct S3Assets {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Assets {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    fn err(&self, op: &str, e: impl std::error::Error) -> StoreError {
        StoreError(format!(
            "S3 {op} on bucket {}: {}",
            self.bucket,
            DisplayErrorContext(e)
        ))
    }
}

#[async_trait::async_trait]
impl AssetStore for S3Assets {
    async fn file(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(path)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", e)),
        };
        if out.content_length().unwrap_or(0) > MAX_ASSET_BYTES {
            return Err(StoreError(format!(
                "{path} is over {} MiB, too large to serve through the Lambda; share a presigned link",
                MAX_ASSET_BYTES >> 20
            )));
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.err("GetObject (body)", e))?;
        Ok(Some(body.to_vec()))
    }

    async fn folder(&self, path: &str) -> Result<Option<Vec<String>>, StoreError> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names = Vec::new();
        // A folder exists while a key lies under it, if only its own marker.
        let mut exists = path.is_empty();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("ListObjectsV2", e))?;
            exists |= !page.common_prefixes().is_empty() || !page.contents().is_empty();
            let folders = page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .filter_map(|p| p.strip_prefix(prefix.as_str()));
            let files = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| k.strip_prefix(prefix.as_str()));
            // A folder's own marker object (`prefix` itself) is no entry, and
            // hidden names are not served.
            names.extend(
                folders
                    .chain(files)
                    .filter(|n| !n.is_empty() && !n.starts_with('.'))
                    .map(str::to_owned),
            );
        }
        names.sort();
        Ok(exists.then_some(names))
    }
}
