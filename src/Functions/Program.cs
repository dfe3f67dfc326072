using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessClassifier.Functions;
using ServerlessClassifier.Functions.Middleware;

var builder = FunctionsApplication.CreateBuilder(args);
StartupChecks.Run(builder.Configuration);
builder.ConfigureFunctionsWebApplication();
// After the ASP.NET Core integration, so that it runs inside it (the request's HttpContext set, its answer written).
builder.UseWhen<HttpProblemsMiddleware>(HttpProblemsMiddleware.IsHttpTrigger);
builder.Services.AddApplicationInsightsTelemetryWorkerService().ConfigureFunctionsApplicationInsights();
builder.Services.AddClassifierServices();
builder.Logging.AddClassifierLogFilters();
builder.Build().Run();
