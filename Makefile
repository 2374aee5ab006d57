# Thin wrapper over CMake. `make run` and `make test` are the README's two
# commands: they install missing Debian packages, build, then run or test.
BUILD_TYPE ?= Debug
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=
# Debian's python3 has python3-websocket; prefer it over other pythons.
PYTHON     ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)

DEB_PKGS := build-essential cmake pkg-config libraft-dev libuv1-dev \
	libwslay-dev liblmdb-dev libmsgpack-dev libhttp-parser-dev \
	libjansson-dev libssl-dev libcmocka-dev python3 python3-websocket curl \
	zlib1g-dev fuse3 libfuse3-dev

# libFuzzer targets (tests/fuzz/README.md): built with clang in their own
# CMake project, each run FUZZ_SECONDS (FUZZ_JOBS at a time).
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?=
FUZZ_PKGS    := clang libclang-rt-14-dev

.PHONY: all deps build run test clean release fuzz fuzz-deps chaos

all: build

# Installs the Debian packages of $(1) that are missing (sudo unless root).
define install_missing
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCHORUS_WERROR=ON

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

release:
	$(MAKE) build BUILD_TYPE=Release BUILD_DIR=build-release

run: build
	deploy/local-cluster.sh run $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 $(CTEST_ARGS)

# A long chaos run (tests/chaos): kills, pauses, restarts, transfers under
# load, then checks that nothing acknowledged was lost or duplicated.
# NEMESIS picks the faults (tests/chaos/README.md): default, powerloss,
# corrupt, all.
DURATION ?= 600
NEMESIS  ?= default
chaos: build
	CHORUSD=$(CURDIR)/$(BUILD_DIR)/chorusd CHORUSCTL=$(CURDIR)/$(BUILD_DIR)/chorusctl \
	CHORUS_LUSW=$(CURDIR)/$(BUILD_DIR)/tests/powerloss/chorus-lusw \
	CHORUS_SOURCE_DIR=$(CURDIR) $(PYTHON) tests/chaos/chaos.py --duration $(DURATION) \
	--nemesis $(NEMESIS)

clean:
	rm -rf $(BUILD_DIR) build-release build-fuzz

fuzz-deps: deps
	$(call install_missing,$(FUZZ_PKGS))

fuzz: fuzz-deps
	cmake -S tests/fuzz -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang
	cmake --build $(FUZZ_DIR) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)
