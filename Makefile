# Thin wrapper over CMake. `make run` and `make test` are the README's two
# commands: they install missing Debian packages, build, then run or test.
BUILD_TYPE ?= Debug
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

DEB_PKGS := build-essential cmake pkg-config libraft-dev libuv1-dev \
	libwslay-dev liblmdb-dev libmsgpack-dev libhttp-parser-dev \
	libjansson-dev libssl-dev libcmocka-dev python3 python3-websocket curl

.PHONY: all deps build run test clean release

all: build

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

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

clean:
	rm -rf $(BUILD_DIR) build-release
