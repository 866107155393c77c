// Nova's main for Go functions: compiled into the function's own package (package main), it
// calls the handler through the Lambda Runtime API that Nova's agent serves. The handler may
// take (context.Context, E), (E), (context.Context) or nothing, E any JSON-decodable type, and
// return (R, error), R, error or nothing, as aws-lambda-go allows.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"time"
)

var novaContextType = reflect.TypeOf((*context.Context)(nil)).Elem()
var novaErrorType = reflect.TypeOf((*error)(nil)).Elem()

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	handler := reflect.ValueOf(NOVA_HANDLER)
	if problem := novaCheckSignature(handler.Type()); problem != "" {
		novaPost(api+"/init/error", map[string]any{"errorType": "Runtime.InvalidHandler", "errorMessage": problem})
		os.Exit(1)
	}
	for {
		response, err := http.Get(api + "/invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "nova: /next failed:", err)
			os.Exit(1)
		}
		event, _ := io.ReadAll(response.Body)
		response.Body.Close()
		id := response.Header.Get("Lambda-Runtime-Aws-Request-Id")
		output, failure := novaInvoke(handler, event, response.Header.Get("Lambda-Runtime-Deadline-Ms"))
		if failure != nil {
			novaPost(api+"/invocation/"+id+"/error", failure)
		} else {
			novaPost(api+"/invocation/"+id+"/response", output)
		}
	}
}

func novaCheckSignature(kind reflect.Type) string {
	if kind.Kind() != reflect.Func {
		return "the handler is not a function"
	}
	if kind.NumIn() > 2 || (kind.NumIn() == 2 && kind.In(0) != novaContextType) {
		return "the handler takes at most (context.Context, event)"
	}
	if kind.NumOut() > 2 || (kind.NumOut() == 2 && kind.Out(1) != novaErrorType) {
		return "the handler returns at most (result, error)"
	}
	return ""
}

func novaInvoke(handler reflect.Value, event []byte, deadline string) (output any, failure map[string]any) {
	defer func() {
		if panicked := recover(); panicked != nil {
			failure = map[string]any{"errorType": "Runtime.Panic", "errorMessage": fmt.Sprint(panicked)}
		}
	}()
	ctx := context.Background()
	if ms, err := strconv.ParseInt(deadline, 10, 64); err == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(ms))
		defer cancel()
	}
	kind := handler.Type()
	var args []reflect.Value
	for i := 0; i < kind.NumIn(); i++ {
		if kind.In(i) == novaContextType {
			args = append(args, reflect.ValueOf(ctx))
			continue
		}
		value := reflect.New(kind.In(i))
		if err := json.Unmarshal(event, value.Interface()); err != nil {
			return nil, map[string]any{"errorType": "Runtime.UnmarshalError", "errorMessage": err.Error()}
		}
		args = append(args, value.Elem())
	}
	results := handler.Call(args)
	for _, result := range results {
		if result.Type() == novaErrorType {
			if !result.IsNil() {
				err := result.Interface().(error)
				return nil, map[string]any{"errorType": reflect.TypeOf(err).String(), "errorMessage": err.Error()}
			}
		} else {
			output = result.Interface()
		}
	}
	return output, nil
}

func novaPost(url string, body any) {
	encoded, err := json.Marshal(body)
	if err != nil {
		encoded, _ = json.Marshal(map[string]any{"errorType": "Runtime.MarshalError", "errorMessage": err.Error()})
		url = url[:len(url)-len("response")] + "error"
	}
	response, err := http.Post(url, "application/json", bytes.NewReader(encoded))
	if err != nil {
		fmt.Fprintln(os.Stderr, "nova: posting the result failed:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, response.Body)
	response.Body.Close()
}
