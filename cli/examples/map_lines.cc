// Maps a jobd function over the lines of stdin and prints one result per
// line, in order: `jobctl map FUNCTION` in a few lines of the client library.
//
//   c++ -std=c++20 map_lines.cc $(pkg-config --cflags --libs jobd-client) -o map_lines
//   seq 1 100 | ./map_lines sha256
#include <unistd.h>

#include <iostream>

#include "jobd/client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: map_lines FUNCTION < lines\n";
    return 2;
  }
  jobd::Result<jobd::Client> client = jobd::Client::Connect();
  if (!client.ok()) {
    std::cerr << client.message() << "\n";
    return 3;
  }
  jobd::DelimitedSource lines(STDIN_FILENO, '\n');
  int failed = 0;
  jobd::Result<jobd::JobSummary> summary = client->Map(
      argv[1], lines, jobd::MapOptions{}, [&](const jobd::ItemResult& result) -> jobd::Status {
        if (result.ok) {
          std::cout << result.value << "\n";
        } else {
          std::cerr << "item " << result.index << " failed: " << result.value << "\n";
          ++failed;
        }
        return {};
      });
  if (!summary.ok()) {
    std::cerr << summary.message() << "\n";
    return 4;
  }
  return failed > 0 ? 1 : 0;
}
