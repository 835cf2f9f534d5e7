#!/usr/bin/env bash
# Install the third-party checkers the tests run against generated projects:
# the Nu HTML Checker (vnu-jar), axe-core and the MDN HTTP Observatory, at the
# versions of package.json / package-lock.json, into node_modules/ (npm ci,
# again only when the lock file changes). The Nu checker needs a JRE; when it
# is missing and this runs as root, Debian's is installed. Whatever cannot be
# installed is reported here, and the tests that need it skip (or fail under
# ROBACCIA_REQUIRE_SERVICES=1, as in CI).
set -u
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing a Java runtime from Debian (for the Nu HTML Checker)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y default-jre-headless >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y default-jre-headless >/dev/null 2>&1; } \
      || echo "could not install a Java runtime"
  else
    echo "java is not installed: the Nu HTML Checker tests will skip (sudo apt-get install default-jre-headless)"
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is not installed: the vnu, axe-core and Observatory tests will skip"
  exit 0
fi

stamp=node_modules/.robaccia-tools
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ "$stamp" -nt package.json ]; then
  exit 0
fi

# NOTE: --ignore-scripts: the packages' install scripts each download something
# from outside the npm registry (a JDK for vnu-jar when it finds none, Mozilla's
# CA bundle, Chromium's HSTS preload list, IANA's TLD list). None is needed to
# scan a local test site: the JDK is the system's, the site's certificate is
# the test's own (NODE_EXTRA_CA_CERTS), and the one file the Observatory reads
# at scan time is written below.
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; then
  echo "npm ci failed: the vnu, axe-core and Observatory tests will skip"
  exit 0
fi

# The Observatory looks a host up in Chromium's HSTS preload list (a bonus for
# preloaded sites). The test scans localhost, which is on no preload list: an
# empty list is the true answer for it.
preload=node_modules/@mdn/mdn-http-observatory/conf/hsts-preload.json
[ -f "$preload" ] || echo '{}' > "$preload"

touch "$stamp"
echo "test tools installed in node_modules/"
