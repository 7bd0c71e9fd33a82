/*
 * rkllm_demo — an RKLLM 1.1.1 program written only against rkllm.h, as a Rockchip user would
 * write it; it runs unchanged on llm8.
 *
 *   rkllm_demo [MODEL] [PROMPT]     (default model: models/stories260k)
 */
#include "rkllm.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int finished;

static void callback(RKLLMResult *result, void *userdata, LLMCallState state) {
    if (state == RKLLM_RUN_NORMAL) {
        printf("%s", result->text);
        fflush(stdout);
    } else if (state == RKLLM_RUN_FINISH) {
        printf("\n");
        atomic_store(&finished, 1);
    } else if (state == RKLLM_RUN_ERROR) {
        printf("\nrun error\n");
        atomic_store(&finished, 1);
    }
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "models/stories260k";
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";

    RKLLMParam param = rkllm_createDefaultParam();
    param.model_path = model;
    param.max_context_len = 256;
    param.max_new_tokens = 48;
    param.top_k = 1; /* deterministic output for the demo */

    LLMHandle llm = NULL;
    if (rkllm_init(&llm, &param, callback) != 0) {
        fprintf(stderr, "rkllm_init failed: %s\n", rkllm_last_error(NULL));
        return 1;
    }

    RKLLMInput input;
    memset(&input, 0, sizeof input);
    input.input_type = RKLLM_INPUT_PROMPT;
    input.prompt_input = prompt;
    RKLLMInferParam infer;
    memset(&infer, 0, sizeof infer);
    infer.mode = RKLLM_INFER_GENERATE;

    printf("%s", prompt);
    if (rkllm_run(llm, &input, &infer, NULL) != 0) {
        fprintf(stderr, "rkllm_run failed\n");
        rkllm_destroy(llm);
        return 1;
    }

    /* An async run stopped early: 1.1.1's rkllm_is_running returns 0 while a task runs. */
    atomic_store(&finished, 0);
    printf("async:");
    if (rkllm_run_async(llm, &input, &infer, NULL) != 0) {
        fprintf(stderr, "rkllm_run_async failed\n");
        rkllm_destroy(llm);
        return 1;
    }
    rkllm_abort(llm);
    while (rkllm_is_running(llm) == 0) usleep(1000);
    while (!atomic_load(&finished)) usleep(1000); /* the FINISH callback follows the idle state */
    printf("is_running after abort: %d (non-zero = idle)\n", rkllm_is_running(llm));

    rkllm_destroy(llm);
    return 0;
}
