// Mosquitto's $SYS hierarchy (mosquitto(8), "BROKER STATUS"), each payload a decimal number in
// ASCII. A client reads them by subscribing (the bridge user's ACL allows `read $SYS/#`).
//
// How Mosquitto 2.0.11 (Debian 12) publishes them, read from its sys_tree.c and seen in
// tests/integration/mqtt_client_test.cc: every `sys_interval` seconds (1 in
// deploy/mosquitto/mosquitto.conf) it publishes the counters that CHANGED since the last time
// (all of them once after the start), retained, with a message expiry of 60 s. So a subscriber
// connected all along sees every change (as live, non-retained messages), but one that subscribes
// later gets a counter's retained value only if it changed within the last minute: a dropped
// counter that stays at 0 is not readable a minute after the broker started. (2.0.16 fixed this:
// "Fix $SYS messages being expired after 60 seconds and hence unchanged values disappearing".)
// A monitor therefore subscribes once and keeps its subscription, and treats "no value yet" as
// "unchanged".
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace telemetry::mqtt {

// PUBLISHes dropped because of the max_inflight_messages / max_queued_messages /
// max_queued_bytes limits since the broker started. With the local stack's limits (0: none) it
// stays 0; anything else means QoS 1 messages the broker acknowledged to a device were lost.
inline constexpr absl::string_view kSysPublishDropped = "$SYS/broker/publish/messages/dropped";
// PUBLISHes received / sent since the broker started.
inline constexpr absl::string_view kSysPublishReceived = "$SYS/broker/publish/messages/received";
inline constexpr absl::string_view kSysPublishSent = "$SYS/broker/publish/messages/sent";
// Messages held in the store (retained ones and those queued for persistent sessions).
inline constexpr absl::string_view kSysStoredMessages = "$SYS/broker/store/messages/count";
// Persistent sessions registered and not connected.
inline constexpr absl::string_view kSysClientsDisconnected = "$SYS/broker/clients/disconnected";

// A counter's payload ("13056") as a number. INVALID_ARGUMENT for anything but decimal digits
// (surrounding ASCII whitespace allowed) that fit 64 bits: the load averages under
// $SYS/broker/load/ are fractions and are not counters.
absl::StatusOr<uint64_t> ParseSysCounter(absl::string_view payload);

}  // namespace telemetry::mqtt
