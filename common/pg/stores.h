// The Postgres implementations of the store interfaces, built on a PgPool.
// What a service's main() calls; everything else takes the interfaces.
#pragma once

#include <memory>

#include "common/alert_rules.h"
#include "common/alert_silences.h"
#include "common/alert_state.h"
#include "common/archive_store.h"
#include "common/clock.h"
#include "common/metadata_store.h"
#include "common/reading_reader.h"
#include "common/reading_writer.h"

namespace telemetry {

class PgPool;

std::unique_ptr<MetadataStore> NewPgMetadataStore(PgPool* pool);
std::unique_ptr<ReadingReader> NewPgReadingReader(PgPool* pool);
std::unique_ptr<ReadingWriter> NewPgReadingWriter(PgPool* pool);
// `clock` (default: the system clock) stamps created_at_ns / updated_at_ns.
std::unique_ptr<AlertRuleStore> NewPgAlertRuleStore(PgPool* pool, const Clock* clock = nullptr);
std::unique_ptr<AlertStateStore> NewPgAlertStateStore(PgPool* pool);
std::unique_ptr<AlertSilenceStore> NewPgAlertSilenceStore(PgPool* pool);
std::unique_ptr<ArchiveStore> NewPgArchiveStore(PgPool* pool);
// The warehouse loader's metadata (docs/warehouse.md): everything answered by
// `primary` (series ids are the primary's); ResolveSeries also copies the
// dimension rows of series new to it (tenant, project, device, series) from
// `primary_pool` into `warehouse`. None is owned.
std::unique_ptr<MetadataStore> NewWarehouseMetadataStore(MetadataStore* primary,
                                                         PgPool* primary_pool, PgPool* warehouse);

}  // namespace telemetry
