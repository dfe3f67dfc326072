using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Middleware;
using ServerlessClassifier.Functions.Contracts;

namespace ServerlessClassifier.Functions.Middleware;

/// <summary>
/// Answers the exceptions of HTTP functions, once for all of them (as the worker samples' ExceptionHandlingMiddleware
/// does): a refused request, a refused image and "no model" become the RFC 9457 problems of
/// <see cref="Problems.For(Exception, Microsoft.AspNetCore.Http.HttpResponse)"/>, set as the invocation's result, which
/// the ASP.NET Core integration's middleware around this one writes as it writes a result the function returned. Any
/// other exception goes on unchanged to the host, which answers it as before: 500 with an empty body. Program.cs
/// registers it for HTTP triggers only (<see cref="IsHttpTrigger"/>) and after <c>ConfigureFunctionsWebApplication()</c>,
/// so that it runs inside the integration's middleware, where the request's <c>HttpContext</c> is set.
/// </summary>
public sealed class HttpProblemsMiddleware : IFunctionsWorkerMiddleware
{
    /// <summary>True for functions with an HTTP trigger; blob, queue and timer functions never pass through this middleware.</summary>
    public static bool IsHttpTrigger(FunctionContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.FunctionDefinition.InputBindings.Values.Any(binding => string.Equals(binding.Type, "httpTrigger", StringComparison.OrdinalIgnoreCase));
    }

    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            await next(context);
        }
        catch (Exception error) when (context.GetHttpContext() is { } http)
        {
            // Custom Vision's routes answer in Custom Vision's error shape; every other HTTP function in RFC 9457 problems.
            var problem = context.FunctionDefinition.Name == nameof(Functions.CustomVisionClassify)
                ? CustomVision.CustomVisionErrors.For(error, http.Response)
                : Problems.For(error, http.Response);
            if (problem is null)
            {
                throw;
            }
            context.GetInvocationResult().Value = problem;
        }
    }
}
