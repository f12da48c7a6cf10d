#!/bin/sh
# One-shot topic creation for the compose stack (runs in the apache/kafka image, POSIX sh).
# Creates every topic of TOPICS ("name:partitions,name:partitions,...", the same format and list
# as the dev broker's --topics) unless it exists, and grows a topic that has fewer partitions
# than asked for (Kafka cannot shrink one: that is reported as an error).
#
# Environment: BOOTSTRAP_SERVERS (kafka:9092), TOPICS, REPLICATION_FACTOR (1),
# KAFKA_TOPICS_SH (/opt/kafka/bin/kafka-topics.sh; the checks point it at a stub).
set -eu

bootstrap="${BOOTSTRAP_SERVERS:-kafka:9092}"
topics="${TOPICS:?TOPICS is not set}"
replication="${REPLICATION_FACTOR:-1}"
kt="${KAFKA_TOPICS_SH:-/opt/kafka/bin/kafka-topics.sh}"

partitions_of() {
  "$kt" --bootstrap-server "$bootstrap" --describe --topic "$1" 2>/dev/null |
    sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1
}

status=0
for spec in $(echo "$topics" | tr ',' ' '); do
  name="${spec%%:*}"
  want="${spec##*:}"
  if [ -z "$name" ] || [ "$name" = "$spec" ] || ! [ "$want" -gt 0 ] 2>/dev/null; then
    echo "create-topics: bad topic spec '$spec' (want name:partitions)" >&2
    exit 2
  fi
  "$kt" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
    --partitions "$want" --replication-factor "$replication"
  have="$(partitions_of "$name")"
  if [ -z "$have" ]; then
    echo "create-topics: $name: cannot describe it" >&2
    status=1
  elif [ "$have" -lt "$want" ]; then
    echo "create-topics: $name: $have partitions, growing to $want"
    "$kt" --bootstrap-server "$bootstrap" --alter --topic "$name" --partitions "$want"
  elif [ "$have" -gt "$want" ]; then
    echo "create-topics: $name has $have partitions, more than $want: Kafka cannot shrink it" >&2
    status=1
  else
    echo "create-topics: $name: $have partitions"
  fi
done
exit "$status"
