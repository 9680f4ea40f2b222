// Command-line parsing for every binary of the project, on Abseil flags.
//
//   int main(int argc, char** argv) {
//     core::ParseFlagsOrExit(argc, argv, "Does X.\nUsage: tool --a=1 [--b=2]",
//     /*max_positional=*/0);
//     ...
//
// Differences from absl::ParseCommandLine: --help (and --helpfull, --help=substring) print the
// usage and exit 0, not 1; positional arguments beyond `max_positional` are rejected with a clear
// message and exit 2. Unknown flags and unparsable values exit 1 with Abseil's message naming them.
#ifndef CORE_FLAGS_H_
#define CORE_FLAGS_H_

#include <string>
#include <vector>

namespace core {

// Sets the usage message, parses argv, handles --help, and returns the positional arguments
// (argv[0] excluded). Call once, from main, before reading any flag.
std::vector<std::string> ParseFlagsOrExit(int argc, char** argv, const char* usage,
                                          int max_positional = 0);

}  // namespace core

#endif  // CORE_FLAGS_H_
