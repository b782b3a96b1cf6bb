#!/usr/bin/env bash
# Puts the built terraform-provider-otaas where Terraform finds it without any CLI configuration:
# the implied local mirror ~/.terraform.d/plugins (see Terraform's "provider installation"
# docs). Afterwards `terraform init` works on every example and on your own configurations that
# require `source = "otaas/otaas"`.
#
#   bash scripts/install-provider.sh              # builds as the README does, then installs
#   bash scripts/install-provider.sh --no-build   # installs the binary already built
#
# Env: OTAAS_PROVIDER_BIN (a binary to install instead of target/release's), TF_PLUGIN_DIR
# (another plugin directory, e.g. one named in a filesystem_mirror block).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) echo "install-provider: unknown argument $arg (usage: install-provider.sh [--no-build])" >&2; exit 2 ;;
  esac
done
VERSION="$(cargo metadata --locked --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "terraform-provider-otaas"))')"
if [[ -z "${OTAAS_PROVIDER_BIN:-}" && "$BUILD" == 1 ]]; then
  cargo build --release --locked
fi
TARGET_DIR="$(cargo metadata --locked --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="${OTAAS_PROVIDER_BIN:-$TARGET_DIR/release/terraform-provider-otaas}"
[[ -x "$BIN" ]] || { echo "install-provider: no provider binary at $BIN (build first, or drop --no-build)" >&2; exit 1; }
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) PLATFORM=linux_amd64 ;;
  Linux/aarch64) PLATFORM=linux_arm64 ;;
  Darwin/x86_64) PLATFORM=darwin_amd64 ;;
  Darwin/arm64) PLATFORM=darwin_arm64 ;;
  *) echo "install-provider: unsupported platform $(uname -s)/$(uname -m)" >&2; exit 1 ;;
esac
PLUGINS="${TF_PLUGIN_DIR:-$HOME/.terraform.d/plugins}"
DEST="$PLUGINS/registry.terraform.io/otaas/otaas/$VERSION/$PLATFORM"
mkdir -p "$DEST"
# A copy, not a link: Terraform's mirrors do not follow symlinks to outside the mirror.
cp -f "$BIN" "$DEST/terraform-provider-otaas_v$VERSION"
echo "install-provider: otaas/otaas $VERSION installed in $DEST" >&2
echo "install-provider: terraform init now finds it (required_providers { otaas = { source = \"otaas/otaas\" } })" >&2
