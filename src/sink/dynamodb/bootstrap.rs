//! Table bootstrap at start-up: DescribeTable each configured table; create
//! missing ones (on-demand billing) when `create_tables` is on and enable
//! their TTL; refuse to start when a table's key schema differs from the
//! config. Polls DescribeTable (the SDK waiter waits at least 20 s).

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType as DdbKeyType, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use tokio::time::Instant;

use crate::config::{KeySpec, KeyType, TableSpec};

/// Why the tables are not usable.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The table exists with other keys: a configuration error (exit 64).
    #[error("table `{table}` has key schema {actual}, but the config says {expected}")]
    SchemaMismatch {
        table: String,
        expected: String,
        actual: String,
    },
    #[error("table `{0}` does not exist and dynamodb.create_tables is off")]
    Missing(String),
    #[error("DynamoDB not usable for table `{table}` within dynamodb.startup_timeout: {message}")]
    Unavailable { table: String, message: String },
}

/// Makes every table usable or says why not.
pub async fn ensure_tables(
    client: &Client,
    tables: &[std::sync::Arc<TableSpec>],
    create: bool,
    timeout: Duration,
) -> Result<(), BootstrapError> {
    let deadline = Instant::now() + timeout;
    for table in tables {
        ensure_table(client, table, create, deadline).await?;
    }
    Ok(())
}

async fn ensure_table(
    client: &Client,
    table: &TableSpec,
    create: bool,
    deadline: Instant,
) -> Result<(), BootstrapError> {
    let unavailable = |message: String| BootstrapError::Unavailable {
        table: table.name.clone(),
        message,
    };
    let mut delay = Duration::from_millis(50);
    let mut created = false;
    loop {
        match client.describe_table().table_name(&table.name).send().await {
            Ok(out) => {
                if let Some(desc) = out.table() {
                    check_schema(table, desc)?;
                    if desc.table_status() == Some(&TableStatus::Active) {
                        if created {
                            enable_ttl(client, table).await;
                        }
                        return Ok(());
                    }
                }
            }
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
                if !create {
                    return Err(BootstrapError::Missing(table.name.clone()));
                }
                if !created {
                    match create_table(client, table).await {
                        Ok(()) => {
                            created = true;
                            tracing::info!(table = %table.name, "created table (on-demand billing)");
                            continue;
                        }
                        Err(e) if e.code() == Some("ResourceInUseException") => created = true,
                        Err(e) => {
                            tracing::warn!(table = %table.name, error = %e, "CreateTable failed; retrying")
                        }
                    }
                }
            }
            Err(e) => {
                let message = match &e {
                    SdkError::ServiceError(se) => format!(
                        "{}: {}",
                        se.err().code().unwrap_or("error"),
                        se.err().message().unwrap_or("")
                    ),
                    other => format!("{other:?}"),
                };
                if Instant::now() >= deadline {
                    return Err(unavailable(message));
                }
                tracing::warn!(table = %table.name, error = %message, "DescribeTable failed; retrying");
            }
        }
        if Instant::now() >= deadline {
            return Err(unavailable("table did not become ACTIVE".to_owned()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

fn check_schema(table: &TableSpec, desc: &TableDescription) -> Result<(), BootstrapError> {
    let types: std::collections::HashMap<&str, &ScalarAttributeType> = desc
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name(), a.attribute_type()))
        .collect();
    let render = |keys: &[(String, String, String)]| {
        keys.iter()
            .map(|(n, k, t)| format!("{n} {t} ({k})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let actual: Vec<(String, String, String)> = desc
        .key_schema()
        .iter()
        .map(|k| {
            let ty = types
                .get(k.attribute_name())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
                ty,
            )
        })
        .collect();
    let mut expected = vec![(
        table.partition_key.name.clone(),
        "HASH".to_owned(),
        type_name(&table.partition_key).to_owned(),
    )];
    if let Some(sk) = &table.sort_key {
        expected.push((
            sk.name.clone(),
            "RANGE".to_owned(),
            type_name(sk).to_owned(),
        ));
    }
    let mut a = actual.clone();
    a.sort();
    let mut e = expected.clone();
    e.sort();
    if a != e {
        return Err(BootstrapError::SchemaMismatch {
            table: table.name.clone(),
            expected: render(&expected),
            actual: render(&actual),
        });
    }
    Ok(())
}

fn type_name(k: &KeySpec) -> &'static str {
    match k.kind {
        KeyType::S => "S",
        KeyType::N => "N",
    }
}

fn scalar(k: &KeySpec) -> ScalarAttributeType {
    match k.kind {
        KeyType::S => ScalarAttributeType::S,
        KeyType::N => ScalarAttributeType::N,
    }
}

async fn create_table(client: &Client, table: &TableSpec) -> Result<(), aws_sdk_dynamodb::Error> {
    let mut req = client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest);
    let mut keys = vec![(&table.partition_key, DdbKeyType::Hash)];
    if let Some(sk) = &table.sort_key {
        keys.push((sk, DdbKeyType::Range));
    }
    for (k, kind) in keys {
        req = req
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&k.name)
                    .key_type(kind)
                    .build()?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&k.name)
                    .attribute_type(scalar(k))
                    .build()?,
            );
    }
    req.send().await?;
    Ok(())
}

/// Enables TTL on a table the gateway created; a failure (e.g. dynalite has
/// no UpdateTimeToLive) is a warning, not a reason to stop.
async fn enable_ttl(client: &Client, table: &TableSpec) {
    let Some(attr) = &table.ttl_attribute else {
        return;
    };
    let spec = match TimeToLiveSpecification::builder()
        .attribute_name(attr)
        .enabled(true)
        .build()
    {
        Ok(s) => s,
        Err(e) => {
            return tracing::warn!(table = %table.name, error = %e, "cannot build TTL specification")
        }
    };
    match client
        .update_time_to_live()
        .table_name(&table.name)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => tracing::info!(table = %table.name, attribute = %attr, "enabled TTL"),
        Err(e) => tracing::warn!(
            table = %table.name,
            attribute = %attr,
            error = %aws_sdk_dynamodb::Error::from(e),
            "could not enable TTL; items still carry the attribute (enable TTL on the table yourself)"
        ),
    }
}
