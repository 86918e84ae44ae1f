#!/bin/bash -e
# The firmware, its Python dependencies, default configuration and units, with the same script
# the install test runs (image-build/install-callrec.sh). build.sh exports CALLREC_REPO and
# CALLREC_WHEELHOUSE through the pi-gen config.
"${CALLREC_REPO}/image-build/install-callrec.sh" "${ROOTFS_DIR}" "${CALLREC_WHEELHOUSE}"
