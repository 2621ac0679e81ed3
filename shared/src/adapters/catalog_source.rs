//! Where Verity's API catalog comes from (`VERITY_CATALOG_URI`): a file path, or an
//! `s3://bucket/key` object. Read once per cold start by the functions that need it.
use super::queue::aws_config;
use crate::domain::verity::catalog::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum CatalogSourceError {
    #[error("cannot read the catalog file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("cannot read the catalog object {uri}: {reason}")]
    S3 { uri: String, reason: String },
    #[error("VERITY_CATALOG_URI {0:?} is neither a file path nor s3://bucket/key")]
    Unsupported(String),
    #[error(transparent)]
    Catalog(#[from] crate::domain::verity::catalog::CatalogError),
}

/// The catalog's text from `uri`.
pub async fn read(uri: &str) -> Result<String, CatalogSourceError> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| CatalogSourceError::Unsupported(uri.to_string()))?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws_config().await)
                // moto (and other emulators) serve buckets by path, not by host name.
                .force_path_style(std::env::var("AWS_ENDPOINT_URL").is_ok())
                .build(),
        );
        let s3_error = |reason: String| CatalogSourceError::S3 {
            uri: uri.to_string(),
            reason,
        };
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| s3_error(e.to_string()))?
            .into_bytes();
        return String::from_utf8(bytes.to_vec()).map_err(|_| s3_error("not UTF-8".into()));
    }
    if uri.contains("://") {
        return Err(CatalogSourceError::Unsupported(uri.to_string()));
    }
    let path = uri.strip_prefix("file:").unwrap_or(uri);
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| CatalogSourceError::File {
            path: path.to_string(),
            reason: e.to_string(),
        })
}

/// Read and parse.
pub async fn load(uri: &str) -> Result<Catalog, CatalogSourceError> {
    Ok(Catalog::parse(&read(uri).await?)?)
}
