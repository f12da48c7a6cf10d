// The Postgres implementations of the store interfaces, built on a PgPool.
// What a service's main() calls; everything else takes the interfaces.
#pragma once

#include <memory>

#include "common/metadata_store.h"
#include "common/reading_reader.h"
#include "common/reading_writer.h"

namespace telemetry {

class PgPool;

std::unique_ptr<MetadataStore> NewPgMetadataStore(PgPool* pool);
std::unique_ptr<ReadingReader> NewPgReadingReader(PgPool* pool);
std::unique_ptr<ReadingWriter> NewPgReadingWriter(PgPool* pool);

}  // namespace telemetry
