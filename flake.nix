{
  description = "nbs (nix-build-shell): step into the sandbox of a failed Nix build";

  # A NixOS release branch: its Go (1.22 on 24.05) must satisfy go.mod's
  # `go` line, since buildGoModule builds with GOTOOLCHAIN=local.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      # The one place the release version is written.
      version = "0.1.0";

      # The sandbox is Linux-only; on darwin nbs is a client for Linux
      # remote builders (`nbs build` with --builders, `nbs shell --remote`).
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f:
        nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (system: pkgs: rec {
        nbs = pkgs.buildGoModule {
          pname = "nbs";
          inherit version;
          src = ./.;
          subPackages = [ "cmd/nbs" ];

          # NAR hash of the `go mod vendor` tree; it changes with go.mod,
          # go.sum and the set of imported packages. nix/flake_test.go
          # recomputes it (`go test -run FlakeVendorHash ./nix/`) and prints
          # the new value when this one is stale.
          vendorHash = "sha256-9SJL6xnjCIEwEAF39Il4fss/1kTJGHOOrUmfoD5L098=";

          # A static binary: it can be copied to a remote builder and run there.
          CGO_ENABLED = 0;
          ldflags = [ "-s" "-w" "-X main.version=${version}" ];

          # The tests need Nix, a nix-daemon, user namespaces and root, none
          # of which the build sandbox has; CI runs them (.ci/run).
          doCheck = false;

          meta = {
            description = "Enter the sandbox of a failed Nix build, with its kept build directory and environment";
            platforms = pkgs.lib.platforms.linux ++ pkgs.lib.platforms.darwin;
            mainProgram = "nbs";
          };
        };
        default = nbs;
      });

      # nix run .#nbs -- shell /tmp/nix-build-wttr.drv-0
      apps = forAllSystems (system: pkgs: rec {
        nbs = {
          type = "app";
          program = "${self.packages.${system}.nbs}/bin/nbs";
          meta.description = self.packages.${system}.nbs.meta.description;
        };
        default = nbs;
      });

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.go pkgs.gopls ]
            # The end-to-end tests drive a real nix-build (Linux only).
            ++ pkgs.lib.optionals pkgs.stdenv.hostPlatform.isLinux [ pkgs.nix ];
        };
      });
    };
}
