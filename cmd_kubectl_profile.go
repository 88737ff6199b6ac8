package main

import "github.com/urfave/cli/v2"

func kubectlProfileCommand() *cli.Command { return &cli.Command{Name: "profile"} }
