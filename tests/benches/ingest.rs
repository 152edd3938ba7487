//! Ingest throughput against DynamoDB Local: the record store's `put` (parse, identities,
//! conditional writes, 32 in flight) for requests of 1, 25 and 500 records, beside a bare SDK
//! `BatchWriteItem` loop writing the same records 25 at a time. Both in one run.
//!
//! `source "$(infra/local-aws/start)" && cargo bench -p latchkey-tests --bench ingest`

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use latchkey::DatasourceId;
use latchkey::ingest::RecordStore;
use latchkey::ingest::body::prepare;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::store::schema::{self, create_records_table, record_sk, records_pk};
use latchkey_tests::{sdk_config, unique_name};

fn body(count: usize) -> String {
    let records: Vec<String> =
        (0..count).map(|n| format!(r#"{{"device": "sensor-{n}", "temperature": 21.5, "humidity": 40}}"#)).collect();
    format!(r#"{{"records": [{}]}}"#, records.join(","))
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (store, client, table) = runtime.block_on(async {
        let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
        let table = unique_name("bench-records");
        create_records_table(&client, &table).await.unwrap();
        (DynamoRecordStore::new(client.clone(), table.clone()), client, table)
    });
    let datasource = DatasourceId::generate();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for count in [1usize, 25, 500] {
        let text = body(count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("record_store_put", count), &text, |b, text| {
            b.to_async(&runtime).iter(|| async {
                let prepared = prepare(text.as_bytes(), None, Utc::now(), 7).unwrap();
                let records: Vec<_> = prepared.records.into_iter().map(|(_, record)| record).collect();
                let outcomes = store.put(&datasource, &records).await;
                assert!(outcomes.iter().all(|o| *o == latchkey::ingest::PutOutcome::Stored));
            })
        });
        group.bench_with_input(BenchmarkId::new("bare_batch_write_item", count), &text, |b, text| {
            b.to_async(&runtime).iter(|| async {
                let prepared = prepare(text.as_bytes(), None, Utc::now(), 7).unwrap();
                let items: Vec<WriteRequest> = prepared
                    .records
                    .iter()
                    .map(|(_, record)| {
                        let item = HashMap::from([
                            (
                                schema::PARTITION_KEY.to_owned(),
                                AttributeValue::S(records_pk(&datasource, record.identity.shard())),
                            ),
                            (
                                schema::RECORDS_SORT_KEY.to_owned(),
                                AttributeValue::S(record_sk(&record.identity.digest)),
                            ),
                            (schema::RECORDS_SEQUENCE_KEY.to_owned(), AttributeValue::S(record.sequence.to_string())),
                            ("data".to_owned(), AttributeValue::S(record.data.get().to_owned())),
                        ]);
                        WriteRequest::builder()
                            .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                            .build()
                    })
                    .collect();
                for chunk in items.chunks(25) {
                    let mut pending = chunk.to_vec();
                    while !pending.is_empty() {
                        let output =
                            client.batch_write_item().request_items(table.clone(), pending).send().await.unwrap();
                        pending = output.unprocessed_items.and_then(|mut left| left.remove(&table)).unwrap_or_default();
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
