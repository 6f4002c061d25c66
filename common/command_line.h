// The command lines of jobd's programs, on CLI11: one help layout, number
// checks that say what they want, and errors that name the wrong word,
// suggest the right one and say where the help is.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jobd {

// Help as a man page reads: the synopsis first (given per command), what the
// command does, its arguments, options and commands, then the footer;
// descriptions wrapped to 80 columns.
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter();
  // Shown in `app`'s own help: `synopsis` instead of CLI11's one-line usage,
  // and `about` (paragraphs as written) instead of its description, which
  // stays the one-line summary in its parent's list of commands.
  void Describe(const CLI::App* app, std::string synopsis, std::string about = "");
  std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override;
  std::string make_usage(const CLI::App* app, std::string name) const override;
  std::string make_description(const CLI::App* app) const override;
  std::string make_subcommand(const CLI::App* sub) const override;
  std::string make_option_name(const CLI::Option* option, bool positional) const override;
  std::string make_option_opts(const CLI::Option* option) const override;
  std::string make_option_desc(const CLI::Option* option) const override;

 private:
  struct Text {
    std::string synopsis, about;
  };
  const Text* Find(const CLI::App* app) const;
  std::vector<std::pair<const CLI::App*, Text>> texts_;
};

// Readies `app` (named as its program) to explain itself: help laid out by
// the returned formatter (with `synopsis` and `footer`), -h/--help, and
// --version printing "NAME VERSION".
std::shared_ptr<HelpFormatter> SetUpHelp(CLI::App& app, std::string synopsis, std::string footer,
                                         const std::string& version);

// A whole number from `min` to `max`.
CLI::Validator WholeNumber(uint64_t min, uint64_t max);
// Seconds, fractions allowed: more than 0 (from 0 if `from_zero`), at most `max`.
CLI::Validator Seconds(double max, bool from_zero = false);

// Parses the command line into `app` (the program's, named as it is called).
// Returns the status to exit with now: 0 after --help or --version (printed
// on stdout), `usage_status` after a usage error (said on stderr, with the
// closest known option or command to a misspelt one); nullopt to go on.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv,
                                    int usage_status);

}  // namespace jobd
