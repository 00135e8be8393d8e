# imbox — the developer's entry points. See README.md.

CARGO ?= cargo
RUN_DATA ?= $(CURDIR)/run-data
RUN_LISTEN ?= 127.0.0.1:8080

.PHONY: all build run test test-web fuzz lint fmt check-fmt clippy unit e2e clean

all: build

build:
	$(CARGO) build --workspace --bins

# Runs imboxd on loopback with a data directory inside the checkout
# (gitignored). Ctrl-C stops it; `rm -rf run-data` forgets everything.
run:
	$(CARGO) build --bin imboxd --bin imbox
	@echo
	@echo "imboxd: data in $(RUN_DATA)"
	@echo "  set up the box:     https://127.0.0.1:8443/setup  (the claim code is in the log below and in $(RUN_DATA)/imbox-claim.txt)"
	@echo "                      the certificate is self-signed: compare its SHA-256 with the one on http://$(RUN_LISTEN)/ before accepting it"
	@echo "  chat in a browser:  https://127.0.0.1:8443/chat  (sign in with an account; invite links open https://127.0.0.1:8443/join#...)"
	@echo "  WebSocket ws://$(RUN_LISTEN)/ws, wss://127.0.0.1:8443/ws and QUIC quic://127.0.0.1:8443 (the log lists them)"
	@echo "  create an account:  echo 'a long password' | ./target/debug/imboxd --data-dir $(RUN_DATA) user add alice --admin"
	@echo "  log in:             echo 'a long password' | ./target/debug/imbox --server ws://$(RUN_LISTEN) --profile /tmp/alice login alice"
	@echo "  pair a member:      ./target/debug/imboxd --data-dir $(RUN_DATA) invite create --uri   (then: imbox --profile DIR pair URI USER)"
	@echo
	./target/debug/imboxd --data-dir $(RUN_DATA) run --listen $(RUN_LISTEN)

# Every test: formatting, lints, unit tests, end-to-end tests, the browser
# tests of the setup and admin pages and the tus-js-client test, then the
# appliance image's boot tests (make test-image: root, the Debian packages
# .ci/run installs, about 20 minutes). SKIP_IMAGE_TESTS=1 leaves those out; CI always runs them.
SKIP_IMAGE_TESTS ?=
test: check-fmt clippy build
	$(CARGO) test --workspace --all-targets
	$(MAKE) fuzz
	$(MAKE) test-web
ifeq ($(SKIP_IMAGE_TESTS),)
	$(MAKE) test-image
else
	@echo "make test: SKIP_IMAGE_TESTS is set: the image's boot tests (make test-image) did not run"
endif

# The fuzz targets (fuzz/: the frame decoder, QUIC stream framing, bytes
# after a WebSocket upgrade and on a QUIC session stream against a real
# server, the session state machine) for FUZZ_SECONDS each, two at a time,
# and the model-based test of multi-device sync with FUZZ_MODEL_CASES random
# runs: about a minute with the defaults, on the debug build that the tests
# above made (a release build would cost CI a full compile more). A failure
# prints the seed that
# replays it (IMBOX_FUZZ_SEED=...) and saves the input in
# target/fuzz-failures/. `cargo test` alone gives each target 2 seconds.
FUZZ_SECONDS ?= 15
FUZZ_MODEL_CASES ?= 10
fuzz:
	IMBOX_FUZZ_SECONDS=$(FUZZ_SECONDS) IMBOX_MODEL_CASES=$(FUZZ_MODEL_CASES) \
		$(CARGO) test -p imbox-fuzz -- --test-threads 2

# The browser tests (tests/web/): the web chat client, the join page, the
# setup and admin pages in English and Chinese (with axe-core), the owner's
# certificate, in Debian's chromium driven by Playwright, and attachments
# uploaded, cut and resumed with tus-js-client in Node; first, a check that
# the vendored npm files in server/web/vendor/ are the locked packages'
# (tests/web/; needs Node.js 20 or newer, npm, /usr/bin/chromium, a Chinese
# font and openssl, which .ci/run installs; the npm packages are pinned in
# tests/web's lockfile).
# npm ci runs again only when the lockfile changes. Screenshots go to
# tests/web/out/. `cd tests/web && npm run test:attachments` runs only the
# tus test.
WEB_TESTS := tests/web
$(WEB_TESTS)/node_modules/.package-lock.json: $(WEB_TESTS)/package-lock.json
	cd $(WEB_TESTS) && npm ci --no-audit --no-fund

test-web: build $(WEB_TESTS)/node_modules/.package-lock.json
	cd $(WEB_TESTS) && node vendor.mjs --check && npm test

check-fmt:
	$(CARGO) fmt --all --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

# The benchmark (bench/run.sh): imboxd against mosquitto, rumqttd and ejabberd
# on this machine, in one run, then a phone's QUIC session alone (resume
# latency with and without 0-RTT, bytes per idle hour: about 100 s). `bench`
# is the standard run (10,000 idle sessions; under 15 minutes once built and installed); `bench-full` holds
# 100,000 idle sessions. Output in bench/out/<timestamp>/, the plot and the
# JSON results in docs/benchmarks/. `bench-attachments` moves a 256 MiB file
# up and down over imboxd's HTTPS (tus) and QUIC and over nginx's HTTPS
# (Debian's nginx, which it installs): a few minutes; JSON results in
# docs/benchmarks/attachments/.
.PHONY: bench bench-full bench-attachments bench-web

# The standard run, then the attachments' run (each with its own time budget),
# then the web chat app's (bench/web/run.mjs with a release imboxd: Chromium, CPU throttled 4×;
# first-load bytes, the latest page of a 10,000-message conversation, the
# JS heap with 50 conversations opened; JSON in bench/out/web-*.json).
bench:
	bench/run.sh standard
	bench/run.sh attachments
	$(MAKE) bench-web

bench-web: $(WEB_TESTS)/node_modules/.package-lock.json
	$(CARGO) build --release -p imboxd
	IMBOX_WEB_PROFILE=release node bench/web/run.mjs

bench-full:
	bench/run.sh full

bench-attachments:
	bench/run.sh attachments

# --- The appliance image (docs/IMAGE.md) ------------------------------------
# `make image` builds out/imbox-rpi4.img(.xz) from Debian's arm64 packages,
# the aarch64 imboxd and overlay/; `make qemu` boots it; `make test-image`
# boots it and checks it. They need root, and the Debian packages that
# .ci/run installs (mmdebstrap, qemu-user-static, qemu-system-arm, genimage,
# squashfs-tools, mtools, dosfstools, gcc-aarch64-linux-gnu).
AARCH64_TARGET := aarch64-unknown-linux-musl
CROSS_TARGET_DIR := $(CURDIR)/target/cross
IMBOXD_AARCH64 := $(CROSS_TARGET_DIR)/$(AARCH64_TARGET)/release/imboxd
OUT := $(CURDIR)/out
IMAGE := $(OUT)/imbox-rpi4.img
QEMU_DIR := $(OUT)/qemu
QEMU_PORTS ?= 8080,8443,8443
QEMU_APPEND ?= $(if $(QEMU_DEBUG),imbox.debug)

.PHONY: imboxd-aarch64 image qemu test-image

# A static binary: rust-lld links it, and crates that compile C (ring) use
# Debian's aarch64 gcc. A separate target directory keeps this release
# build from waiting on the workspace's debug builds.
imboxd-aarch64:
	@command -v rustup >/dev/null && rustup target list --installed | grep -qx $(AARCH64_TARGET) \
		|| rustup target add $(AARCH64_TARGET)
	CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
	AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
		$(CARGO) build --release --locked -p imboxd --bin imboxd \
		--target $(AARCH64_TARGET) --target-dir $(CROSS_TARGET_DIR)

image: imboxd-aarch64
	image/build-image.sh $(IMBOXD_AARCH64) $(OUT)

# Boots a copy of the image (as if flashed onto a 4 GB card: the copy is
# made again whenever the image is newer) with a blank 8 GB USB disk.
# QEMU_DEBUG=1 gives a root shell on the serial console.
qemu:
	@test -f $(IMAGE) || { echo "no $(IMAGE): run make image first" >&2; exit 1; }
	@mkdir -p $(QEMU_DIR)
	@if [ ! -f $(QEMU_DIR)/sd.img ] || [ $(IMAGE) -nt $(QEMU_DIR)/sd.img ]; then \
		cp --sparse=always $(IMAGE) $(QEMU_DIR)/sd.img && truncate -s 4G $(QEMU_DIR)/sd.img && \
		rm -f $(QEMU_DIR)/usb.img; fi
	@test -f $(QEMU_DIR)/usb.img || truncate -s 8G $(QEMU_DIR)/usb.img
	image/qemu.sh --sd $(QEMU_DIR)/sd.img --usb $(QEMU_DIR)/usb.img --ports $(QEMU_PORTS) --append "$(QEMU_APPEND)"

# Builds the image (without the .xz, which the tests do not use), checks its
# initramfs against the Pi 4's device tree (check-initramfs), boots it on
# QEMU's emulated Pi 4 (image/test-raspi4b.sh), then boots it under QEMU's
# virt machine and checks it with the x86_64 imbox client
# (image/test-boot.sh). The root is kept in IMAGE_ROOTFS_CACHE and reused
# with a new imboxd while everything else it is made from is unchanged, for
# up to 7 days (image/build-image.sh); IMAGE_ROOTFS_CACHE= builds it afresh.
IMAGE_ROOTFS_CACHE ?= /var/cache/imbox-image/rootfs
test-image:
	@[ "$$(id -u)" = 0 ] || { echo "make test-image needs root (mmdebstrap, genimage); SKIP_IMAGE_TESTS=1 make test leaves it out" >&2; exit 1; }
	$(CARGO) build --bin imbox
	IMBOX_XZ=0 IMBOX_ROOTFS_CACHE=$(IMAGE_ROOTFS_CACHE) $(MAKE) image
	$(MAKE) check-initramfs IMAGE=$(IMAGE)
	image/test-raspi4b.sh $(IMAGE)
	image/test-boot.sh $(IMAGE) $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/debug/imbox

# Writes the image onto an SD card and prints the box's claim code with a QR
# code of its setup page (image/flash.sh: it refuses a mounted disk, a
# partition, or the disk of the running system, and asks first).
#   sudo make flash DEVICE=/dev/sdX [IMAGE=imbox-rpi4-<version>.img.xz] [PRESEED=imbox.toml]
# DEVICE may be a file acting as a card; FLASH_YES=1 does not ask.
DEVICE ?=
PRESEED ?=
FLASH_YES ?=
.PHONY: flash
flash:
	@[ -n "$(DEVICE)" ] || { echo "make flash needs the SD card's disk: make flash DEVICE=/dev/sdX (lsblk lists the disks)" >&2; exit 1; }
	@[ -f "$(IMAGE)" ] || { echo "no $(IMAGE): run make image first, or give a downloaded one with IMAGE=imbox-rpi4-<version>.img.xz" >&2; exit 1; }
	image/flash.sh "$(IMAGE)" "$(DEVICE)" $(if $(PRESEED),--preseed "$(PRESEED)") $(if $(FLASH_YES),--yes)

# Checks of image/, overlay/ and buildroot/ that need neither root nor
# Buildroot's sources: shellcheck, the files the defconfig names, the
# imboxd package's version, systemd-analyze verify.
.PHONY: check-image buildroot-image
check-image:
	image/check.sh

# Checks IMAGE's initramfs against the image's own kernel and Pi 4B device
# tree (image/dtb-modules.py), and that the same check fails on the old hand
# list of modules (image/check-initramfs.sh, docs/IMAGE.md). Needs no root;
# make check-image runs it too when $(IMAGE) exists.
.PHONY: check-initramfs
check-initramfs:
	image/check-initramfs.sh $(IMAGE)

# The minimal release image with the Raspberry Pi kernel and firmware, from
# buildroot/ (BR2_EXTERNAL). It downloads Buildroot and every source it
# builds, so it needs the internet: CI cannot run it (docs/IMAGE.md).
BUILDROOT_VERSION ?= 2026.02.3
BUILDROOT_OUT := $(OUT)/buildroot
IMBOX_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
buildroot-image:
	mkdir -p $(BUILDROOT_OUT)/src
	test -d $(BUILDROOT_OUT)/buildroot-$(BUILDROOT_VERSION) || \
		curl -fsSL https://buildroot.org/downloads/buildroot-$(BUILDROOT_VERSION).tar.xz | tar -xJ -C $(BUILDROOT_OUT)
	tar --exclude=./target --exclude=./out --exclude=./.git --exclude=./run-data \
		--transform 's,^\.,imboxd-$(IMBOX_VERSION),' -czf $(BUILDROOT_OUT)/src/imboxd-$(IMBOX_VERSION).tar.gz .
	$(MAKE) -C $(BUILDROOT_OUT)/buildroot-$(BUILDROOT_VERSION) BR2_EXTERNAL=$(CURDIR)/buildroot \
		O=$(BUILDROOT_OUT)/build imbox_rpi4_64_defconfig
	$(MAKE) -C $(BUILDROOT_OUT)/buildroot-$(BUILDROOT_VERSION) O=$(BUILDROOT_OUT)/build
	@echo "image: $(BUILDROOT_OUT)/build/images/imbox-rpi4.img(.xz)"
