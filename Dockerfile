# drrserve on Debian 12, built by the same script as a developer machine and
# installed with `cmake --install` (cmake/Install.cmake).
# This image builds the CPU executor only: Debian ships no CUDA toolkit. For a
# GPU image, start from a base that has nvcc in /usr/local/cuda (the build
# picks it up) and run with the NVIDIA container runtime.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv sudo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/setup.sh \
    && cmake --install build --prefix /opt/drrserve --component runtime

FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libcivetweb1 zlib1g libpng16-16 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/drrserve/ /usr/local/
EXPOSE 50051 9464
# Inside a container the listeners bind every interface, explicitly.
ENTRYPOINT ["drrserve", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
CMD ["--preload-phantom"]
