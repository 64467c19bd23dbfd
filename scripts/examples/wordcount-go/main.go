// Command wordcount is a small MCP server built on the official Go SDK: the
// README's worked example of sandboxing a Go binary that lives outside the
// workspace. Its one tool, count_words, counts the words of a file.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type countArgs struct {
	Path string `json:"path" jsonschema:"the file to count, absolute or relative to the working directory"`
}

func countWords(_ context.Context, _ *mcp.CallToolRequest, in countArgs) (*mcp.CallToolResult, any, error) {
	b, err := os.ReadFile(in.Path)
	if err != nil {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil
	}
	n := len(strings.Fields(string(b)))
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%d words in %s", n, in.Path)}}}, nil, nil
}

func main() {
	server := mcp.NewServer(&mcp.Implementation{Name: "wordcount", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{
		Name:        "count_words",
		Description: "Count the words of a file.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, countWords)
	if err := server.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
