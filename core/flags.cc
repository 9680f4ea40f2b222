#include "core/flags.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"

namespace core {

std::vector<std::string> ParseFlagsOrExit(int argc, char** argv, const char* usage,
                                          int max_positional) {
  absl::SetProgramUsageMessage(usage);
  // Abseil 20220623 exits 1 after printing --help; parse without its usage handling and run that
  // ourselves so that asking for help is a success.
  const std::vector<char*> args = absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  if (absl::flags_internal::HandleUsageFlags(std::cout, absl::ProgramUsageMessage()) != -1) {
    std::exit(0);
  }
  std::vector<std::string> positional(args.begin() + 1, args.end());
  if (static_cast<int>(positional.size()) > max_positional) {
    std::fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", argv[0],
                 positional[max_positional].c_str());
    std::exit(2);
  }
  return positional;
}

}  // namespace core
