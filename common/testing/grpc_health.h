// grpc.health.v1 Check from a test, without generated health stubs (Debian
// ships health.proto but no C++ for it): the request is field 1 (the service
// name, omitted when empty); the answer is field 1 (the status) as a varint.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

namespace telemetry::testing {

// The serving status of `service` on 127.0.0.1:`port` (empty name: the server
// as a whole): 1 SERVING, 2 NOT_SERVING, 0 UNKNOWN, -1 no answer or unknown name.
inline int GrpcHealth(int port, const std::string& service = "") {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::string encoded;
  if (!service.empty()) {
    encoded.push_back(0x0a);
    encoded.push_back(static_cast<char>(service.size()));  // names here are < 128 bytes
    encoded += service;
  }
  grpc::Slice body(encoded);
  grpc::ByteBuffer request(&body, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status st) { done.set_value(std::move(st)); });
  if (!done.get_future().get().ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (bytes.empty()) return 0;  // UNKNOWN (the default value is not sent)
  return bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : -1;
}

}  // namespace telemetry::testing
