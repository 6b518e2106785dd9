//! The AWS configuration every command runs with: the SDK's standard chain (environment,
//! profile, SSO, web identity, container and instance metadata) and endpoint variables,
//! checked for credentials once, before any call, so a missing sign-in is one sentence
//! instead of the chain's error under every check.

use aws_credential_types::provider::ProvideCredentials;

use crate::error::OpsError;

/// The SDK configuration, with credentials that resolve.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, OpsError> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let no_credentials = |cause: String| OpsError::NoCredentials {
        profile: profile.clone(),
        cause,
    };
    let provider = aws
        .credentials_provider()
        .ok_or_else(|| no_credentials("no credentials provider".to_owned()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| no_credentials(fanout_core::error_chain(&e)))?;
    Ok(aws)
}
