using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using ServerlessClassifier.Functions;

var builder = FunctionsApplication.CreateBuilder(args);
StartupChecks.Run(builder.Configuration);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddClassifierServices();
builder.Build().Run();
