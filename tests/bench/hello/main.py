"""The hello-world functions-framework function that cold starts are measured against."""


def hello(request):
    return "ok"
