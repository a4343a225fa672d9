# Sourced by ci/tartu-page and ci/pad-graphiql (page tests in headless
# Chromium driven by Playwright for Python). Expects ROOT (the checkout)
# and VENV (the virtualenv's folder) to be set; sets CHROMIUM and BIN.

# Debian's chromium, installed if missing. Playwright drives this browser;
# it never downloads one of its own.
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found; installing it (Debian package chromium)" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  $SUDO apt-get install -y chromium
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"

# Playwright for Python in a virtualenv, installed if missing.
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.49.1}"
if ! "$VENV/bin/python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  echo "installing Playwright for Python $PLAYWRIGHT_VERSION into $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
fi

# The bookstore binary: the debug build, since the pages do not need the
# optimised one (PROFILE=release to use that). BOOKSTORE_BIN: a binary
# already built (ci/test passes the one `cargo test --workspace` built;
# `cargo build -p bookstore` alone resolves other features and builds
# again for a minute).
PROFILE="${PROFILE:-debug}"
if [ -n "${BOOKSTORE_BIN:-}" ]; then
  BIN="$BOOKSTORE_BIN"
  if [ ! -x "$BIN" ]; then
    echo "$0: BOOKSTORE_BIN=$BIN is not an executable" >&2
    exit 2
  fi
else
  if [ "$PROFILE" = release ]; then
    cargo build --release -p bookstore --bin bookstore
  else
    cargo build -p bookstore --bin bookstore
  fi
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/bookstore"
fi
