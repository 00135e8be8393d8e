################################################################################
#
# imboxd
#
################################################################################

# Must match the workspace's version in Cargo.toml (checked by
# image/check-buildroot.sh).
IMBOXD_VERSION = 0.4.0
# `make buildroot-image` packs the workspace into imboxd-$(IMBOXD_VERSION).tar.gz
# (the default source name) here, so that Buildroot's cargo download
# post-processing vendors its dependencies (a local site method would skip
# vendoring and the build runs --offline).
IMBOXD_SITE = $(BR2_EXTERNAL_IMBOX_PATH)/../out/buildroot/src
IMBOXD_SITE_METHOD = file
IMBOXD_SUBDIR = server
IMBOXD_LICENSE = AGPL-3.0-or-later
IMBOXD_CARGO_BUILD_OPTS = --bin imboxd
IMBOXD_CARGO_INSTALL_OPTS = --bin imboxd

# The units, the configuration and the first-boot scripts come from the
# repository's overlay/ (BR2_ROOTFS_OVERLAY); the user from users.table.
define IMBOXD_INSTALL_INIT_SYSTEMD
	$(INSTALL) -d $(TARGET_DIR)/data
endef

$(eval $(cargo-package))
