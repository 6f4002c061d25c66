#include "common/command_line.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <sstream>

namespace jobd {
namespace {

// The edit distance between two words (insertions, deletions, substitutions).
size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate closest to `word`, if one is close enough to be a misspelling.
std::string Closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = Distance(word, candidate);
    const bool prefix = word.size() >= 3 && candidate.rfind(word, 0) == 0;
    if (distance < best_distance || (prefix && best.empty())) {
      best = candidate;
      best_distance = prefix ? 0 : distance;
    }
  }
  return best;
}

// The deepest command the command line chose.
const CLI::App* Chosen(const CLI::App& app) {
  const CLI::App* chosen = &app;
  while (!chosen->get_subcommands().empty()) chosen = chosen->get_subcommands().front();
  return chosen;
}

// "jobctl map": the program and its commands as typed.
std::string PathOf(const CLI::App* app) {
  std::string path = app->get_name();
  for (const CLI::App* parent = app->get_parent(); parent != nullptr; parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  return path;
}

// The option names `app` takes, its parents' too (options fall through).
std::vector<std::string> OptionNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (; app != nullptr; app = app->get_parent()) {
    for (const CLI::Option* option : app->get_options()) {
      for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
      for (const std::string& name : option->get_snames()) names.push_back("-" + name);
    }
  }
  return names;
}

// The names of `app`'s commands.
std::vector<std::string> CommandNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

// Whether `app` takes arguments besides options.
bool TakesArguments(const CLI::App* app) {
  return !app->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
}

// What was wrong with the command line, as a person would say it.
std::string Explain(const CLI::App& app, const CLI::ParseError& error) {
  const CLI::App* chosen = Chosen(app);
  std::vector<std::string> left = app.remaining(true);
  if (left.empty()) {
    const bool no_command = dynamic_cast<const CLI::RequiredError*>(&error) != nullptr &&
                            chosen == &app && app.get_require_subcommand_min() > 0;
    if (!no_command) return error.what();
    std::string commands;
    for (const std::string& name : CommandNames(app)) commands += (commands.empty() ? "" : ", ") + name;
    return "missing COMMAND: one of " + commands;
  }
  const std::string& word = left.front();
  if (word.size() > 1 && word[0] == '-') {
    const std::string name = word.substr(0, word.find('='));
    const std::string closest = Closest(name, OptionNames(chosen));
    std::string text = "unknown option '" + word + "'";
    if (!closest.empty()) text += "; did you mean " + closest + "?";
    if (TakesArguments(chosen)) text += " (an argument that starts with '-' goes after --)";
    return text;
  }
  if (chosen == &app && !app.get_subcommands({}).empty()) {
    const std::string closest = Closest(word, CommandNames(app));
    return "unknown command '" + word + "'" + (closest.empty() ? "" : "; did you mean " + closest + "?");
  }
  return "unexpected argument '" + word + "': `" + PathOf(chosen) + "` takes " +
         (TakesArguments(chosen) ? "fewer arguments" : "no arguments, only options");
}

// `text` as lines of at most `width` characters (a longer word stands alone).
std::string Wrap(const std::string& text, size_t width) {
  std::istringstream words(text);
  std::string wrapped, line, word;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      wrapped += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return wrapped + line;
}

}  // namespace

HelpFormatter::HelpFormatter() {
  column_width(26);
  label("Positionals", "Arguments");
  label("Usage", "usage");  // as the synopses given by hand
}

void HelpFormatter::Describe(const CLI::App* app, std::string synopsis, std::string about) {
  texts_.emplace_back(app, Text{std::move(synopsis), std::move(about)});
}

const HelpFormatter::Text* HelpFormatter::Find(const CLI::App* app) const {
  for (const auto& [known, text] : texts_) {
    if (known == app) return &text;
  }
  return nullptr;
}

std::string HelpFormatter::make_help(const CLI::App* app, std::string name,
                                     CLI::AppFormatMode mode) const {
  if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
  std::string help = make_usage(app, name) + "\n" + make_description(app) +
                     make_positionals(app) + make_groups(app, mode) + make_subcommands(app, mode);
  const std::string footer = make_footer(app);
  return footer.empty() ? help : help + "\n" + footer;
}

std::string HelpFormatter::make_usage(const CLI::App* app, std::string name) const {
  const Text* text = Find(app);
  return text != nullptr ? text->synopsis + "\n" : CLI::Formatter::make_usage(app, std::move(name));
}

std::string HelpFormatter::make_description(const CLI::App* app) const {
  const Text* text = Find(app);
  const std::string about = text != nullptr && !text->about.empty()
                                ? text->about  // paragraphs as written
                                : Wrap(app->get_description(), 79);
  return about.empty() ? about : about + "\n";
}

std::string HelpFormatter::make_subcommand(const CLI::App* sub) const {
  std::ostringstream out;
  CLI::detail::format_help(out, sub->get_name(), Wrap(sub->get_description(), 79 - column_width_),
                           column_width_);
  return out.str();
}

std::string HelpFormatter::make_option_name(const CLI::Option* option, bool positional) const {
  std::string name = CLI::Formatter::make_option_name(option, positional);
  for (size_t comma = name.find(','); comma != std::string::npos; comma = name.find(',', comma + 2)) {
    name.insert(comma + 1, " ");
  }
  return name;
}

std::string HelpFormatter::make_option_opts(const CLI::Option* option) const {
  if (option->get_type_size() == 0 || option->get_type_name().empty()) return "";
  return " " + option->get_type_name();
}

std::string HelpFormatter::make_option_desc(const CLI::Option* option) const {
  return Wrap(option->get_description(), 79 - column_width_);
}

std::shared_ptr<HelpFormatter> SetUpHelp(CLI::App& app, std::string synopsis, std::string footer,
                                         const std::string& version) {
  auto help = std::make_shared<HelpFormatter>();
  app.formatter(help);
  help->Describe(&app, std::move(synopsis));
  app.footer(std::move(footer));
  app.set_help_flag("-h,--help", "this text (after a command: the command's)");
  app.set_version_flag("--version", app.get_name() + " " + version, "print the version");
  return help;
}

CLI::Validator WholeNumber(uint64_t min, uint64_t max) {
  const std::string range = "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
        if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || n < min || n > max) {
          return "takes " + range + ", not '" + text + "'";
        }
        return {};
      },
      "");
}

CLI::Validator Seconds(double max, bool from_zero) {
  std::ostringstream range;
  range << std::setprecision(10) << "seconds, " << (from_zero ? "from 0" : "more than 0") << " and at most " << max;
  return CLI::Validator(
      [=, range = range.str()](std::string& text) -> std::string {
        char* end = nullptr;
        const double seconds = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(seconds) || seconds > max ||
            (from_zero ? seconds < 0 : seconds <= 0)) {
          return "takes " + range + ", not '" + text + "'";
        }
        return {};
      },
      "");
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv,
                                    int usage_status) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);  // the chosen command's
  } catch (const CLI::CallForVersion& version) {
    std::printf("%s\n", version.what());
  } catch (const CLI::ParseError& error) {
    const CLI::App* chosen = Chosen(app);
    std::fprintf(stderr, "%s: %s\n(see `%s --help`)\n", app.get_name().c_str(),
                 Explain(app, error).c_str(), PathOf(chosen).c_str());
    return usage_status;
  }
  return 0;
}

}  // namespace jobd
