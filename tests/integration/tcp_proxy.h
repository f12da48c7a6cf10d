// A TCP proxy on loopback for outage tests: forwards every connection to a
// target until Cut(), which closes the live connections and refuses new ones
// (as a server that went away would) until Restore(). Lets a test take one
// process's database away without stopping the database the others share.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace telemetry::testing {

class TcpProxy {
 public:
  // Listens on a free loopback port; forwards to 127.0.0.1:`target_port`.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void Cut();
  void Restore();

 private:
  void AcceptLoop();
  void Pump(int a, int b);

  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false}, cut_{false};
  std::mutex mu_;
  std::vector<int> fds_;  // live connections' sockets (both sides)
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace telemetry::testing
